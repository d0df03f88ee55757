import Foundation

/// The session's byte layout inside the sealed cookie: read on every request, so a compact binary form
/// rather than JSON. Version 3 adds the provider session id, the kept form's tag and the mapped user; a session with
/// none of them is still written as version 2, so that replicas of the previous release, sharing a store during a rolling upgrade, read it
/// (version 1 also held the ID token): strings as a 32-bit length and UTF-8, optionals as a presence byte, lists as a 32-bit count, dates as
/// 64-bit milliseconds since 1970, all big-endian. Reading checks every bound and answers `nil` for anything
/// malformed.
extension Session {
    private static let encodingVersion: UInt8 = 3

    func encoded() -> [UInt8] {
        var writer = ByteWriter()
        let extended = providerSession != nil || keptForm != nil || user != nil
        writer.bytes.append(extended ? Self.encodingVersion : 2)
        writer.string(subject)
        writer.optional(email) { $0.string($1) }
        writer.optional(emailVerified) { $0.bytes.append($1 ? 1 : 0) }
        writer.list(groups) { $0.string($1) }
        writer.optional(preferredUsername) { $0.string($1) }
        writer.list(claims.sorted { $0.key < $1.key }) { writer, claim in
            writer.string(claim.key)
            writer.list(claim.value) { $0.string($1) }
        }
        writer.optional(accessToken) { $0.string($1) }
        writer.optional(accessTokenExpiry) { $0.date($1) }
        writer.optional(refreshToken) { $0.string($1) }
        writer.date(signedInAt)
        writer.date(expiry)
        if extended {
            writer.optional(providerSession) { $0.string($1) }
            writer.optional(keptForm) { $0.string($1) }
            writer.optional(user) { $0.string($1) }
        }
        return writer.bytes
    }

    init?(encoded bytes: [UInt8]) {
        var reader = ByteReader(bytes)
        guard let version = reader.byte(), version == 2 || version == Self.encodingVersion,
            let subject = reader.string(),
            let email = reader.optional({ $0.string() }),
            let emailVerified = reader.optional({ $0.byte().map { $0 == 1 } }),
            let groups = reader.list({ $0.string() }),
            let preferredUsername = reader.optional({ $0.string() }),
            let claimList = reader.list({ reader -> (String, [String])? in
                guard let key = reader.string(), let values = reader.list({ $0.string() }) else { return nil }
                return (key, values)
            }),
            let accessToken = reader.optional({ $0.string() }),
            let accessTokenExpiry = reader.optional({ $0.date() }), let refreshToken = reader.optional({ $0.string() }),
            let signedInAt = reader.date(), let expiry = reader.date(),
            let providerSession = version == 2 ? .some(nil) : reader.optional({ $0.string() }),
            let keptForm = version == 2 ? .some(nil) : reader.optional({ $0.string() }),
            let user = version == 2 ? .some(nil) : reader.optional({ $0.string() }), reader.isAtEnd
        else { return nil }
        self.init(
            subject: subject, email: email, emailVerified: emailVerified, groups: groups,
            preferredUsername: preferredUsername,
            claims: Dictionary(claimList, uniquingKeysWith: { first, _ in first }),
            accessToken: accessToken, accessTokenExpiry: accessTokenExpiry,
            refreshToken: refreshToken, signedInAt: signedInAt, expiry: expiry, providerSession: providerSession,
            keptForm: keptForm, user: user)
    }
}

private struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func integer<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ value: String) {
        integer(UInt32(value.utf8.count))
        bytes.append(contentsOf: value.utf8)
    }

    mutating func date(_ value: Date) { integer(Int64((value.timeIntervalSince1970 * 1000).rounded())) }

    mutating func optional<T>(_ value: T?, _ write: (inout ByteWriter, T) -> Void) {
        guard let value else {
            bytes.append(0)
            return
        }
        bytes.append(1)
        write(&self, value)
    }

    mutating func list<T>(_ values: [T], _ write: (inout ByteWriter, T) -> Void) {
        integer(UInt32(values.count))
        for value in values { write(&self, value) }
    }
}

private struct ByteReader {
    private let bytes: [UInt8]
    private var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { position == bytes.count }

    mutating func byte() -> UInt8? {
        guard position < bytes.count else { return nil }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
        let size = MemoryLayout<T>.size
        guard bytes.count - position >= size else { return nil }
        defer { position += size }
        return bytes[position..<position + size].reduce(T(0)) { $0 << 8 | T($1) }
    }

    mutating func string() -> String? {
        guard let count = integer(UInt32.self).map(Int.init), bytes.count - position >= count else { return nil }
        defer { position += count }
        return String(decoding: bytes[position..<position + count], as: UTF8.self)
    }

    mutating func date() -> Date? {
        integer(Int64.self).map { Date(timeIntervalSince1970: Double($0) / 1000) }
    }

    /// `.some(nil)` for an absent value, `nil` for malformed input.
    mutating func optional<T>(_ read: (inout ByteReader) -> T?) -> T?? {
        switch byte() {
        case 0: return .some(nil)
        case 1: return read(&self).map { .some($0) }
        default: return nil
        }
    }

    mutating func list<T>(_ read: (inout ByteReader) -> T?) -> [T]? {
        guard let count = integer(UInt32.self).map(Int.init), count <= bytes.count - position else { return nil }
        var values: [T] = []
        values.reserveCapacity(count)
        for _ in 0..<count {
            guard let value = read(&self) else { return nil }
            values.append(value)
        }
        return values
    }
}
