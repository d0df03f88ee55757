/// Random bytes for secrets (session handles, sign-in state, nonces, PKCE verifiers, browser ids) from the system's
/// CSPRNG, eight at a time: taken a byte at a time, each byte cost a call into the kernel (row A1 made over a
/// hundred).
public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + 7)
        while bytes.count < count {
            withUnsafeBytes(of: generator.next() as UInt64) { bytes.append(contentsOf: $0) }
        }
        bytes.removeLast(bytes.count - count)
        return bytes
    }
}

/// Bytes as hexadecimal digits, from a table: `String(format: "%02x")` per byte cost 20% of row A1's CPU.
public enum Hex {
    private static let lowercaseDigits = Array("0123456789abcdef".utf8)
    private static let uppercaseDigits = Array("0123456789ABCDEF".utf8)

    /// `bytes` as lowercase hex, two digits each.
    public static func lowercase(_ bytes: some Sequence<UInt8>) -> String {
        var digits: [UInt8] = []
        digits.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            digits.append(lowercaseDigits[Int(byte >> 4)])
            digits.append(lowercaseDigits[Int(byte & 0x0F)])
        }
        return String(decoding: digits, as: UTF8.self)
    }

    /// Appends `byte` as two uppercase hex digits (percent-encoding's).
    public static func appendUppercase(_ byte: UInt8, to output: inout [UInt8]) {
        output.append(uppercaseDigits[Int(byte >> 4)])
        output.append(uppercaseDigits[Int(byte & 0x0F)])
    }
}
