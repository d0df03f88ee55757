/// The WHATWG URL Standard's percent-encode sets (section 1.3), as bitmaps over ASCII.
///
/// Every byte at or above 0x7F is in every set, so encoding a string's UTF-8 bytes one at a time gives
/// exactly the standard's "UTF-8 percent-encode" of its code points.
struct PercentEncodeSet: Sendable {
    private let low: UInt64
    private let high: UInt64

    private init(_ low: UInt64, _ high: UInt64) {
        self.low = low
        self.high = high
    }

    private func adding(_ characters: String) -> PercentEncodeSet {
        var low = self.low
        var high = self.high
        for byte in characters.utf8 {
            if byte < 64 { low |= 1 << UInt64(byte) } else { high |= 1 << UInt64(byte - 64) }
        }
        return PercentEncodeSet(low, high)
    }

    func contains(_ byte: UInt8) -> Bool {
        if byte < 64 { return low & (1 << UInt64(byte)) != 0 }
        if byte < 128 { return high & (1 << UInt64(byte - 64)) != 0 }
        return true
    }

    /// C0 controls and everything above U+007E.
    static let c0Control = PercentEncodeSet(0xFFFF_FFFF, 1 << 63)
    static let fragment = c0Control.adding(" \"<>`")
    static let query = c0Control.adding(" \"#<>")
    static let specialQuery = query.adding("'")
    /// The path set as Node 20's URL (ada 2.9) and current browsers apply it: `^` is left as is.
    static let path = query.adding("?`{}")
    static let userinfo = path.adding("/:;=@[\\]^|")
}

extension Array where Element == UInt8 {
    /// Appends `byte`, percent-encoded when `set` contains it.
    mutating func appendPercentEncoded(_ byte: UInt8, in set: PercentEncodeSet) {
        guard set.contains(byte) else {
            append(byte)
            return
        }
        append(UInt8(ascii: "%"))
        append(hexDigitUppercase(byte >> 4).asciiValue ?? 0)
        append(hexDigitUppercase(byte & 0x0F).asciiValue ?? 0)
    }
}

@inline(__always)
func hexDigitUppercase(_ nibble: UInt8) -> Character {
    Character(Unicode.Scalar(nibble < 10 ? nibble + UInt8(ascii: "0") : nibble - 10 + UInt8(ascii: "A")))
}

/// The value of an ASCII hex digit, either case; `nil` for any other byte.
@inline(__always)
public func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}

/// Percent-decodes bytes per the WHATWG URL Standard: a `%` not followed by two hex digits stays as is.
func percentDecoded<C: Collection<UInt8>>(_ bytes: C) -> [UInt8] where C.Index == Int {
    var output: [UInt8] = []
    output.reserveCapacity(bytes.count)
    var index = bytes.startIndex
    while index < bytes.endIndex {
        let byte = bytes[index]
        if byte == UInt8(ascii: "%"), index + 2 < bytes.endIndex,
            let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2])
        {
            output.append(high << 4 | low)
            index += 3
        } else {
            output.append(byte)
            index += 1
        }
    }
    return output
}
