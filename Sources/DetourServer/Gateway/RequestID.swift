import DetourSessions
import NIOHTTP1
import Synchronization

/// The names the access log gives a request (CONTRACT section 8): its `X-Request-Id`, and the client's address.
///
/// Guarantees: a request id comes from a trusted proxy only, and only when it is its one `X-Request-Id`, of 1 to 128
/// bytes of letters, digits and `-._:+/=[]`; otherwise it is 32 hex digits: 16 chosen at random when the process
/// starts, then a count of the ids it made, so unique across replicas and restarts without a call into the kernel
/// per request (they are names, not secrets). So an id a client sent never reaches an upstream or a log line, and no
/// id can break either.
enum RequestID {
    static func of(_ headers: HTTPHeaders, trusted: Bool) -> String {
        // One value, from a trusted proxy: a proxy that appends its id to a client's leaves two, and neither is sure.
        let given = headers["x-request-id"]
        if trusted, given.count == 1, isUsable(given[0]) { return given[0] }
        return generated(made.add(1, ordering: .relaxed).newValue)
    }

    /// The client's address: the peer's, or, from a trusted proxy, the last address of its `X-Forwarded-For` (the
    /// one that proxy saw; earlier ones are whatever the client wrote).
    static func client(_ headers: HTTPHeaders, _ connection: ConnectionInfo, trusted: Bool) -> String {
        let peer = connection.remoteAddress ?? "-"
        guard trusted, let last = headers["x-forwarded-for"].last?.split(separator: ",").last else { return peer }
        let address = last.trimmingSpaces
        return !address.contains(" ") && isUsable(address) ? address : peer
    }

    private static func isUsable(_ value: String) -> Bool {
        (1...128).contains(value.utf8.count)
            && value.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"):
                    true
                default: "-._:+/=[]".utf8.contains(byte)
                }
            }
    }

    private static let processPart = Array(Hex.lowercase(SecureRandom.bytes(8)).utf8)
    private static let made = Atomic<UInt64>(0)
    private static let digits = Array("0123456789abcdef".utf8)

    /// The process's random part, then `count` as 16 hex digits: written into one string, once.
    private static func generated(_ count: UInt64) -> String {
        String(unsafeUninitializedCapacity: processPart.count + 16) { id in
            var end = id.initialize(fromContentsOf: processPart)
            for shift in stride(from: 60, through: 0, by: -4) {
                id[end] = digits[Int(truncatingIfNeeded: count >> UInt64(shift)) & 0xF]
                end += 1
            }
            return end
        }
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs.
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
