/// A URL's host after the browser's normalisation: a lower-case ASCII domain, an IPv4 or an IPv6 address.
///
/// Two hosts are the same host for a browser exactly when their values are equal.
public enum Host: Sendable, Hashable, CustomStringConvertible {
    /// An ASCII domain, lower case, international labels in punycode; a trailing dot is kept.
    case domain(String)
    case ipv4(UInt32)
    /// The eight 16-bit pieces, most significant first.
    case ipv6([UInt16])

    /// The standard's host serialisation (IPv6 in brackets, compressed).
    public var description: String {
        switch self {
        case .domain(let name):
            return name
        case .ipv4(let address):
            return "\(address >> 24).\(address >> 16 & 0xFF).\(address >> 8 & 0xFF).\(address & 0xFF)"
        case .ipv6(let pieces):
            return "[" + Self.serializeIPv6(pieces) + "]"
        }
    }

    /// Whether this is a loopback host in the contract's sense: `localhost`, `127.0.0.1` or `[::1]`.
    public var isLoopback: Bool {
        switch self {
        case .domain(let name): name == "localhost"
        case .ipv4(let address): address == 0x7F00_0001
        case .ipv6(let pieces): pieces == [0, 0, 0, 0, 0, 0, 0, 1]
        }
    }

    private static func serializeIPv6(_ pieces: [UInt16]) -> String {
        // The first longest run of two or more zero pieces is compressed to "::" (RFC 5952 4.2.3).
        var compress: Int?
        var longest = 1
        var index = 0
        while index < 8 {
            var end = index
            while end < 8, pieces[end] == 0 { end += 1 }
            if end - index > longest {
                longest = end - index
                compress = index
            }
            index = end == index ? index + 1 : end
        }
        var output = ""
        var ignoreZero = false
        for (position, piece) in pieces.enumerated() {
            if ignoreZero, piece == 0 { continue }
            ignoreZero = false
            if compress == position {
                output += position == 0 ? "::" : ":"
                ignoreZero = true
                continue
            }
            output += String(piece, radix: 16)
            if position != 7 { output += ":" }
        }
        return output
    }
}

/// The WHATWG host parser for special schemes (https://url.spec.whatwg.org/#host-parsing).
enum HostParser {
    /// Parses the bytes between the authority's `@` (or `//`) and its port, path, query or fragment.
    static func parse(_ input: ArraySlice<UInt8>) throws(BrowserURL.ParseError) -> Host {
        if input.first == UInt8(ascii: "[") {
            guard input.count >= 2, input.last == UInt8(ascii: "]") else { throw .invalidIPv6 }
            return .ipv6(try parseIPv6(input.dropFirst().dropLast()))
        }
        let domain = try InternationalDomain.toASCII(
            input.contains(UInt8(ascii: "%")) ? percentDecoded(input) : Array(input))
        guard !domain.isEmpty else { throw .invalidHost }
        for byte in domain where isForbiddenDomainCodePoint(byte) { throw .invalidHost }
        if endsInANumber(domain) { return .ipv4(try parseIPv4(domain)) }
        return .domain(String(decoding: domain, as: UTF8.self))
    }

    private static func isForbiddenDomainCodePoint(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x00...0x20, 0x7F: true
        case UInt8(ascii: "#"), UInt8(ascii: "%"), UInt8(ascii: "/"), UInt8(ascii: ":"), UInt8(ascii: "<"),
            UInt8(ascii: ">"), UInt8(ascii: "?"), UInt8(ascii: "@"), UInt8(ascii: "["), UInt8(ascii: "\\"),
            UInt8(ascii: "]"), UInt8(ascii: "^"), UInt8(ascii: "|"):
            true
        default: false
        }
    }

    // MARK: IPv4

    private static func labels(_ domain: [UInt8]) -> [ArraySlice<UInt8>] {
        domain.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
    }

    /// https://url.spec.whatwg.org/#ends-in-a-number-checker
    static func endsInANumber(_ domain: [UInt8]) -> Bool {
        var end = domain.count
        if end > 0, domain[end - 1] == UInt8(ascii: ".") { end -= 1 }
        var start = end
        while start > 0, domain[start - 1] != UInt8(ascii: ".") { start -= 1 }
        let last = domain[start..<end]
        guard !last.isEmpty else { return false }
        // All digits, or "0x" and hex digits: exactly the labels the IPv4 number parser accepts.
        return (try? parseIPv4Number(last)) != nil
    }

    /// https://url.spec.whatwg.org/#concept-ipv4-parser
    static func parseIPv4(_ domain: [UInt8]) throws(BrowserURL.ParseError) -> UInt32 {
        var parts = labels(domain)
        if parts.last?.isEmpty == true, parts.count > 1 { parts.removeLast() }
        guard parts.count <= 4 else { throw .invalidIPv4 }
        var numbers: [UInt64] = []
        for part in parts { numbers.append(try parseIPv4Number(part)) }
        for number in numbers.dropLast() where number > 255 { throw .invalidIPv4 }
        let last = numbers[numbers.count - 1]
        guard last < UInt64(1) << (8 * UInt64(5 - numbers.count)) else { throw .invalidIPv4 }
        var address = last
        for (index, number) in numbers.dropLast().enumerated() { address += number << (8 * UInt64(3 - index)) }
        return UInt32(address)
    }

    /// https://url.spec.whatwg.org/#ipv4-number-parser; values past 2^32 are clamped (they fail anyway).
    static func parseIPv4Number(_ input: ArraySlice<UInt8>) throws(BrowserURL.ParseError) -> UInt64 {
        guard !input.isEmpty else { throw .invalidIPv4 }
        var digits = input
        var radix: UInt64 = 10
        if digits.count >= 2, digits.first == UInt8(ascii: "0"),
            digits[digits.startIndex + 1] == UInt8(ascii: "x") || digits[digits.startIndex + 1] == UInt8(ascii: "X")
        {
            radix = 16
            digits = digits.dropFirst(2)
        } else if digits.count >= 2, digits.first == UInt8(ascii: "0") {
            radix = 8
            digits = digits.dropFirst()
        }
        var value: UInt64 = 0
        for byte in digits {
            guard let digit = hexValue(byte).map(UInt64.init), digit < radix else { throw .invalidIPv4 }
            value = min(value * radix + digit, 1 << 40)
        }
        return value
    }

    // MARK: IPv6

    /// https://url.spec.whatwg.org/#concept-ipv6-parser
    static func parseIPv6(_ input: ArraySlice<UInt8>) throws(BrowserURL.ParseError) -> [UInt16] {
        let bytes = Array(input)
        var address = [UInt16](repeating: 0, count: 8)
        var pieceIndex = 0
        var compress: Int?
        var pointer = 0
        func at(_ index: Int) -> UInt8? { index < bytes.count ? bytes[index] : nil }
        let colon = UInt8(ascii: ":")

        if at(0) == colon {
            guard at(1) == colon else { throw .invalidIPv6 }
            pointer = 2
            pieceIndex = 1
            compress = 1
        }
        while let c = at(pointer) {
            guard pieceIndex != 8 else { throw .invalidIPv6 }
            if c == colon {
                guard compress == nil else { throw .invalidIPv6 }
                pointer += 1
                pieceIndex += 1
                compress = pieceIndex
                continue
            }
            var value: UInt16 = 0
            var length = 0
            while length < 4, let digit = at(pointer).flatMap(hexValue) {
                value = value << 4 | UInt16(digit)
                pointer += 1
                length += 1
            }
            if at(pointer) == UInt8(ascii: ".") {
                guard length != 0 else { throw .invalidIPv6 }
                pointer -= length
                guard pieceIndex <= 6 else { throw .invalidIPv6 }
                var numbersSeen = 0
                while at(pointer) != nil {
                    var ipv4Piece: UInt16 = 0
                    var digitsSeen = 0
                    if numbersSeen > 0 {
                        guard at(pointer) == UInt8(ascii: "."), numbersSeen < 4 else { throw .invalidIPv6 }
                        pointer += 1
                    }
                    guard let first = at(pointer), first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else {
                        throw .invalidIPv6
                    }
                    while let digit = at(pointer), digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") {
                        // A leading zero is refused ("01"), and so is a piece above 255.
                        guard digitsSeen == 0 || ipv4Piece != 0 else { throw .invalidIPv6 }
                        ipv4Piece = ipv4Piece * 10 + UInt16(digit - UInt8(ascii: "0"))
                        guard ipv4Piece <= 255 else { throw .invalidIPv6 }
                        digitsSeen += 1
                        pointer += 1
                    }
                    address[pieceIndex] = address[pieceIndex] << 8 | ipv4Piece
                    numbersSeen += 1
                    if numbersSeen == 2 || numbersSeen == 4 { pieceIndex += 1 }
                }
                guard numbersSeen == 4 else { throw .invalidIPv6 }
                break
            } else if at(pointer) == colon {
                pointer += 1
                guard at(pointer) != nil else { throw .invalidIPv6 }
            } else if at(pointer) != nil {
                throw .invalidIPv6
            }
            address[pieceIndex] = value
            pieceIndex += 1
        }
        if let compress {
            var swaps = pieceIndex - compress
            pieceIndex = 7
            while pieceIndex != 0, swaps > 0 {
                address.swapAt(pieceIndex, compress + swaps - 1)
                pieceIndex -= 1
                swaps -= 1
            }
        } else if pieceIndex != 8 {
            throw .invalidIPv6
        }
        return address
    }
}
