/// The part of UTS #46 ToASCII (as the URL Standard calls it: nontransitional, CheckBidi, CheckJoiners,
/// no STD3 rules, no DNS length check) that Detour reproduces exactly.
///
/// ASCII is lower-cased. Beyond ASCII, only the Latin-1 letters are mapped (U+00C0-U+00DE lower-cased,
/// U+00DF-U+00FF kept, × and ÷ refused): for them the IDNA mapping table, NFC and the Bidi and joiner
/// rules are trivially known. Any other non-ASCII code point, and any `xn--` label that does not decode
/// to such letters, is refused with ``BrowserURL/ParseError/unsupportedInternationalHost``: a browser
/// may accept it, but Detour will not guess what it maps to.
enum InternationalDomain {
    static func toASCII(_ bytes: [UInt8]) throws(BrowserURL.ParseError) -> [UInt8] {
        if bytes.allSatisfy({ $0 < 0x80 }) {
            var lowered = bytes
            for index in lowered.indices where lowered[index] &- UInt8(ascii: "A") < 26 { lowered[index] |= 0x20 }
            guard containsPunycodeLabel(lowered) else { return lowered }
            return try convertLabels(of: Array(String(decoding: lowered, as: UTF8.self).unicodeScalars))
        }
        // "UTF-8 decode without BOM": invalid sequences become U+FFFD, which is refused below.
        // A BOM is kept too: UTS #46 would ignore U+FEFF, Detour refuses it.
        var mappedScalars: [Unicode.Scalar] = []
        for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars { mappedScalars.append(try mapped(scalar)) }
        return try convertLabels(of: mappedScalars)
    }

    /// Whether a label starts with `xn--` (the bytes are already lower case).
    private static func containsPunycodeLabel(_ bytes: [UInt8]) -> Bool {
        var index = 0
        while index + 4 <= bytes.count {
            if bytes[index] == UInt8(ascii: "x"), bytes[index + 1] == UInt8(ascii: "n"),
                bytes[index + 2] == UInt8(ascii: "-"), bytes[index + 3] == UInt8(ascii: "-")
            {
                return true
            }
            guard let dot = bytes[index...].firstIndex(of: UInt8(ascii: ".")) else { return false }
            index = dot + 1
        }
        return false
    }

    /// The UTS #46 mapping step for the code points Detour supports.
    private static func mapped(_ scalar: Unicode.Scalar) throws(BrowserURL.ParseError) -> Unicode.Scalar {
        switch scalar.value {
        case 0x41...0x5A, 0xC0...0xD6, 0xD8...0xDE: Unicode.Scalar(scalar.value + 0x20) ?? scalar
        case 0x00...0x7F, 0xDF...0xF6, 0xF8...0xFF: scalar
        default: throw .unsupportedInternationalHost
        }
    }

    private static func isSupportedLetter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0xDF...0xF6, 0xF8...0xFF: true
        default: false
        }
    }

    /// Validates `xn--` labels and encodes labels with non-ASCII letters, joining with ".".
    private static func convertLabels(of scalars: [Unicode.Scalar]) throws(BrowserURL.ParseError) -> [UInt8] {
        var output: [UInt8] = []
        for (index, label) in scalars.split(separator: ".", omittingEmptySubsequences: false).enumerated() {
            if index > 0 { output.append(UInt8(ascii: ".")) }
            let text = String(String.UnicodeScalarView(label))
            if text.hasPrefix("xn--") {
                // A punycode label must decode to supported letters and encode back to itself.
                guard let decoded = Punycode.decode(text.dropFirst(4)),
                    decoded.contains(where: { $0.value >= 0x80 }),
                    decoded.allSatisfy({ $0.value < 0x80 || isSupportedLetter($0) }),
                    !String(String.UnicodeScalarView(decoded)).hasPrefix("xn--"),
                    Punycode.encode(decoded).map({ "xn--" + $0 }) == text
                else { throw .unsupportedInternationalHost }
                output.append(contentsOf: text.utf8)
            } else if label.contains(where: { $0.value >= 0x80 }) {
                guard let encoded = Punycode.encode(Array(label)) else { throw .unsupportedInternationalHost }
                output.append(contentsOf: "xn--\(encoded)".utf8)
            } else {
                output.append(contentsOf: text.utf8)
            }
        }
        return output
    }
}

/// Punycode (RFC 3492) with the IDNA parameters.
enum Punycode {
    private static let base = 36
    private static let tMin = 1
    private static let tMax = 26
    private static let skew = 38
    private static let damp = 700
    private static let initialBias = 72
    private static let initialN = 0x80

    private static func adapt(_ delta: Int, _ numPoints: Int, _ firstTime: Bool) -> Int {
        var delta = firstTime ? delta / damp : delta / 2
        delta += delta / numPoints
        var k = 0
        while delta > ((base - tMin) * tMax) / 2 {
            delta /= base - tMin
            k += base
        }
        return k + (base - tMin + 1) * delta / (delta + skew)
    }

    private static func digit(_ value: Int) -> Character {
        Character(Unicode.Scalar(UInt8(value < 26 ? value + 97 : value - 26 + 48)))
    }

    private static func value(of scalar: Unicode.Scalar) -> Int? {
        switch scalar.value {
        case 0x30...0x39: Int(scalar.value) - 0x30 + 26
        case 0x41...0x5A: Int(scalar.value) - 0x41
        case 0x61...0x7A: Int(scalar.value) - 0x61
        default: nil
        }
    }

    private static func threshold(_ k: Int, _ bias: Int) -> Int {
        k <= bias ? tMin : (k >= bias + tMax ? tMax : k - bias)
    }

    /// Decodes the part after `xn--`; `nil` when it is not valid punycode.
    static func decode(_ input: Substring) -> [Unicode.Scalar]? {
        let scalars = Array(input.unicodeScalars)
        guard scalars.allSatisfy(\.isASCII) else { return nil }
        var output: [Unicode.Scalar] = []
        var rest = scalars[...]
        if let delimiter = scalars.lastIndex(of: "-") {
            output = Array(scalars[..<delimiter])
            rest = scalars[(delimiter + 1)...]
        }
        var n = initialN
        var i = 0
        var bias = initialBias
        var position = rest.startIndex
        while position < rest.endIndex {
            let oldI = i
            var w = 1
            var k = base
            while true {
                guard position < rest.endIndex, let digit = value(of: rest[position]) else { return nil }
                position += 1
                guard digit <= (Int(Int32.max) - i) / w else { return nil }
                i += digit * w
                let t = threshold(k, bias)
                if digit < t { break }
                guard w <= Int(Int32.max) / (base - t) else { return nil }
                w *= base - t
                k += base
            }
            bias = adapt(i - oldI, output.count + 1, oldI == 0)
            guard i / (output.count + 1) <= Int(Int32.max) - n else { return nil }
            n += i / (output.count + 1)
            i %= output.count + 1
            guard let scalar = Unicode.Scalar(UInt32(n)), n >= initialN else { return nil }
            output.insert(scalar, at: i)
            i += 1
        }
        return output
    }

    /// Encodes a label's code points (without the `xn--` prefix); `nil` on overflow.
    static func encode(_ input: [Unicode.Scalar]) -> String? {
        var output = String(String.UnicodeScalarView(input.filter(\.isASCII)))
        let basicCount = output.unicodeScalars.count
        var handled = basicCount
        if basicCount > 0 { output.append("-") }
        var n = initialN
        var delta = 0
        var bias = initialBias
        while handled < input.count {
            guard let m = input.map({ Int($0.value) }).filter({ $0 >= n }).min() else { return nil }
            guard m - n <= (Int(Int32.max) - delta) / (handled + 1) else { return nil }
            delta += (m - n) * (handled + 1)
            n = m
            for scalar in input {
                let c = Int(scalar.value)
                if c < n {
                    delta += 1
                }
                if c == n {
                    var q = delta
                    var k = base
                    while true {
                        let t = threshold(k, bias)
                        if q < t { break }
                        output.append(digit(t + (q - t) % (base - t)))
                        q = (q - t) / (base - t)
                        k += base
                    }
                    output.append(digit(q))
                    bias = adapt(delta, handled + 1, handled == basicCount)
                    delta = 0
                    handled += 1
                }
            }
            delta += 1
            n += 1
        }
        return output
    }
}
