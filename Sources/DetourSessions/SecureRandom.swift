#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Random bytes for secrets (session handles, sign-in state, nonces, PKCE verifiers, browser ids) from the system's
/// CSPRNG (`arc4random_buf`: glibc 2.36 reads `getrandom` for it, and never returns weak bytes), all of them in one
/// call: the standard library's generator makes a call into the kernel for every eight bytes, a dozen per sign-in.
public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            #if canImport(Glibc) || canImport(Darwin)
                if let start = buffer.baseAddress, count > 0 { arc4random_buf(start, count) }
            #else
                // Elsewhere (musl has no arc4random): the standard library's generator, eight bytes a call.
                var generator = SystemRandomNumberGenerator()
                var index = 0
                while index < count {
                    withUnsafeBytes(of: generator.next() as UInt64) { word in
                        for byte in word.prefix(count - index) {
                            buffer[index] = byte
                            index += 1
                        }
                    }
                }
            #endif
            initialized = count
        }
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
