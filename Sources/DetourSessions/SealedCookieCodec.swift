import Crypto
public import Foundation

/// Seals values into cookie-safe strings with AES-256-GCM, and opens them again.
///
/// Guarantees: a sealed value cannot be read or changed without a key; it opens only for the same
/// `purpose` (a session cookie is never accepted as sign-in state) and only before the expiry sealed
/// inside it; the first key seals and every key opens, so secrets can be rotated. Anything else
/// (truncated, tampered, unknown key, expired, not base64url) opens as `nil`, never as an error:
/// a bad cookie means "not signed in".
///
/// Layout, base64url without padding: version (1) | key id (4) | nonce (12) | ciphertext | tag (16);
/// the plaintext starts with the expiry as 8 bytes of big-endian Unix seconds; the purpose is the
/// additional authenticated data.
public struct SealedCookieCodec: Sendable {
    /// One key derived from one of `session.secrets`.
    struct Key: Sendable {
        let id: [UInt8]
        let key: SymmetricKey
    }

    private static let version: UInt8 = 1
    private let keys: [Key]
    /// The longest value `open` looks at; anything longer is refused unread.
    public static let maximumSealedLength = 64 * 1024

    /// - Parameter secrets: base64 strings of at least 32 random bytes each; the first seals.
    public init(secrets: [String]) throws(SessionKeyError) {
        guard !secrets.isEmpty else {
            throw SessionKeyError(index: nil, problem: "no secrets: session.secrets is empty")
        }
        var keys: [Key] = []
        for (index, secret) in secrets.enumerated() {
            guard let material = Data(base64Encoded: secret), material.count >= 32 else {
                throw SessionKeyError(index: index, problem: "is not base64 of at least 32 bytes")
            }
            // HKDF gives each use its own key even if an operator reuses a secret elsewhere.
            let key = HKDF<SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: material), salt: Array("detour".utf8),
                info: Array("detour sealed cookie v1".utf8), outputByteCount: 32)
            let id = Array(SHA256.hash(data: key.withUnsafeBytes { Array($0) } + Array("key id".utf8)).prefix(4))
            keys.append(Key(id: id, key: key))
        }
        self.keys = keys
    }

    /// Seals `plaintext` for `purpose`, to be opened until `expiry`.
    public func seal(_ plaintext: [UInt8], purpose: String, expiry: Date) -> String {
        let sealingKey = keys[0]
        var framed = withUnsafeBytes(of: Int64(expiry.timeIntervalSince1970.rounded(.down)).bigEndian) { Array($0) }
        framed += plaintext
        do {
            // The nonce from one call into the kernel: swift-crypto's own makes one for every eight bytes.
            let nonce = try AES.GCM.Nonce(data: SecureRandom.bytes(12))
            let box = try AES.GCM.seal(framed, using: sealingKey.key, nonce: nonce, authenticating: Array(purpose.utf8))
            let bytes = [Self.version] + sealingKey.id + Array(box.nonce) + Array(box.ciphertext) + Array(box.tag)
            return Base64URL.encode(bytes)
        } catch {
            preconditionFailure("AES-GCM sealing with a valid 256-bit key cannot fail: \(error)")
        }
    }

    /// The plaintext sealed for `purpose`, or `nil` when the value is anything but a valid, unexpired
    /// value sealed by one of the keys for that purpose, or longer than `maximumLength` (a cookie's, unless a
    /// larger value read from the server's own store is expected).
    public func open(
        _ sealed: some StringProtocol, purpose: String, now: Date, maximumLength: Int = maximumSealedLength
    ) -> [UInt8]? {
        guard sealed.utf8.count <= maximumLength, let bytes = Base64URL.decode(sealed),
            bytes.count >= 1 + 4 + 12 + 8 + 16, bytes[0] == Self.version
        else { return nil }
        let id = Array(bytes[1..<5])
        guard let key = keys.first(where: { $0.id == id }),
            let nonce = try? AES.GCM.Nonce(data: bytes[5..<17]),
            let box = try? AES.GCM.SealedBox(
                nonce: nonce, ciphertext: bytes[17..<(bytes.count - 16)], tag: bytes.suffix(16)),
            let framed = try? AES.GCM.open(box, using: key.key, authenticating: Array(purpose.utf8))
        else { return nil }
        let expiry = framed.prefix(8).reduce(Int64(0)) { $0 << 8 | Int64($1) }
        guard Double(expiry) > now.timeIntervalSince1970 else { return nil }
        return Array(framed.dropFirst(8))
    }
}

/// A `session.secrets` entry that cannot be used.
public struct SessionKeyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Which entry, from 0; `nil` when the list itself is the problem.
    public let index: Int?
    public let problem: String

    public var description: String { index.map { "session.secrets[\($0)] \(problem)" } ?? problem }
}

/// base64url without padding (RFC 4648 section 5), as cookies, JWTs and PKCE use it.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(value) }
        return table
    }()

    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let input = Array(bytes)
        var output: [UInt8] = []
        output.reserveCapacity((input.count * 4 + 2) / 3)
        var index = 0
        while index + 3 <= input.count {
            let chunk = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
            for shift in [18, 12, 6, 0] { output.append(alphabet[Int(chunk >> UInt32(shift) & 0x3F)]) }
            index += 3
        }
        let rest = input.count - index
        if rest > 0 {
            let chunk = UInt32(input[index]) << 16 | (rest == 2 ? UInt32(input[index + 1]) << 8 : 0)
            for shift in [18, 12, 6].prefix(rest + 1) { output.append(alphabet[Int(chunk >> UInt32(shift) & 0x3F)]) }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// `nil` for anything but canonical, unpadded base64url.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var text = String(text)
        let table = values  // one lazy-global check, not one per byte
        return text.withUTF8 { input -> [UInt8]? in
            guard input.count % 4 != 1 else { return nil }
            var output: [UInt8] = []
            output.reserveCapacity(input.count * 3 / 4)
            var accumulator: UInt32 = 0
            var bits = 0
            return table.withUnsafeBufferPointer { table -> [UInt8]? in
                for byte in input {
                    let value = table[Int(byte)]
                    guard value != 0xFF else { return nil }
                    accumulator = accumulator << 6 | UInt32(value)
                    bits += 6
                    if bits >= 8 {
                        bits -= 8
                        output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                    }
                }
                // Leftover bits must be zero, so that every byte string has exactly one encoding.
                guard accumulator & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
                return output
            }
        }
    }
}
