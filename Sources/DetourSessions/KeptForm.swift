public import Foundation
import Synchronization

/// A form POST kept across sign-in (row A2b): where it went and its body, byte for byte.
///
/// Guarantees: ``init(encoded:)`` reads only what ``encoded()`` wrote (every bound checked, `nil` otherwise).
public struct KeptForm: Sendable, Hashable {
    /// The absolute URL the form was posted to, as the gateway resolved it.
    public var url: String
    /// The form's `Content-Type`, with its multipart boundary.
    public var contentType: String
    public var body: [UInt8]

    /// How long a form waits for its sign-in and its user's click.
    public static let lifetime = Duration.seconds(600)
    /// The longest sealed form opened: a 1 MiB body with its URL and type, sealed and in base64.
    public static let maximumSealedLength = 2 * 1024 * 1024

    /// How many bytes of sealed forms a store keeps at once: past it a form is not kept (plain row A2).
    public static let storeCapacity = 64 * 1024 * 1024
    /// How many forms a store keeps at once, likewise.
    public static let storeCount = 10_000

    public init(url: String, contentType: String, body: [UInt8]) {
        self.url = url
        self.contentType = contentType
        self.body = body
    }

    /// Two 32-bit lengths with their UTF-8 strings, then the body.
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + url.utf8.count + contentType.utf8.count + body.count)
        for text in [url, contentType] {
            withUnsafeBytes(of: UInt32(text.utf8.count).bigEndian) { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: text.utf8)
        }
        bytes.append(contentsOf: body)
        return bytes
    }

    public init?(encoded bytes: [UInt8]) {
        var position = 0
        func text() -> String? {
            guard bytes.count - position >= 4 else { return nil }
            let count = bytes[position..<position + 4].reduce(0) { $0 << 8 | Int($1) }
            position += 4
            guard bytes.count - position >= count else { return nil }
            defer { position += count }
            return String(decoding: bytes[position..<position + count], as: UTF8.self)
        }
        guard let url = text(), let contentType = text() else { return nil }
        self.init(url: url, contentType: contentType, body: Array(bytes[position...]))
    }
}

/// Sealed forms kept in this process (the `cookie` and `memory` stores), each until its expiry, taken at most once.
///
/// Bounded: a form that would take the table past ``capacity`` bytes or ``count`` forms is refused once the expired
/// ones are gone, so that a flood of anonymous POSTs cannot fill memory (the flood's own forms are the ones refused).
/// Expired forms are looked for at most once a second, so a full table costs a flood little.
public final class KeptFormTable: Sendable {
    private let table = Mutex(Table())
    public let capacity: Int
    public let count: Int

    private struct Table {
        var forms: [String: (sealed: String, expiry: Date)] = [:]
        var bytes = 0
        var swept = Date.distantPast
    }

    public init(capacity: Int = KeptForm.storeCapacity, count: Int = KeptForm.storeCount) {
        self.capacity = capacity
        self.count = count
    }

    /// Keeps `sealed` under `key` until `expiry`; false when there is no room for it.
    public func keep(_ sealed: String, under key: String, expiry: Date, now: Date) -> Bool {
        let size = sealed.utf8.count
        return table.withLock { table in
            func full() -> Bool { table.bytes + size > capacity || table.forms.count >= count }
            if full(), now.timeIntervalSince(table.swept) >= 1 {
                table.swept = now
                for (key, form) in table.forms where form.expiry <= now { Self.remove(key, from: &table) }
            }
            guard !full() else { return false }
            Self.remove(key, from: &table)
            table.forms[key] = (sealed, expiry)
            table.bytes += size
            return true
        }
    }

    /// The form under `key`, left in place; `nil` when there is none or it expired.
    public func peek(_ key: String, now: Date) -> String? {
        table.withLock { $0.forms[key].flatMap { $0.expiry > now ? $0.sealed : nil } }
    }

    /// The form under `key`, removed: a second take answers `nil`.
    public func take(_ key: String, now: Date) -> String? {
        table.withLock { table in
            guard let form = table.forms[key] else { return nil }
            Self.remove(key, from: &table)
            return form.expiry > now ? form.sealed : nil
        }
    }

    /// How many bytes of sealed forms are held (for tests).
    public var bytes: Int { table.withLock { $0.bytes } }

    private static func remove(_ key: String, from table: inout Table) {
        guard let form = table.forms.removeValue(forKey: key) else { return }
        table.bytes -= form.sealed.utf8.count
    }
}
