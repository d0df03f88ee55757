import CCurl
import Foundation
import Synchronization

/// An HTTP client on libcurl for calls to the identity provider.
///
/// One `curl_multi` handle is driven by a thread of its own, so transfers never block a SwiftNIO event
/// loop or the cooperative thread pool, any number of them run at once, and connections are reused.
/// Every transfer follows no redirects (a 3xx is ``CurlError/Kind/redirectRefused``: following a 307
/// would re-send the code and the client secret), speaks only http and https, verifies TLS, has a
/// connect and a total timeout and a response size limit, sends no `Expect: 100-continue`, and is
/// cancelled with its task.
public final class CurlClient: Sendable {
    /// Limits and trust for every transfer of a client.
    public struct Options: Sendable {
        public var connectTimeout: Duration
        public var timeout: Duration
        /// The largest response body accepted, in bytes.
        public var maximumResponseSize: Int
        /// A PEM file of extra trust anchors (`oidc.ca_file`).
        public var caFile: String?

        public init(
            connectTimeout: Duration = .seconds(5), timeout: Duration = .seconds(10),
            maximumResponseSize: Int = 1 << 20, caFile: String? = nil
        ) {
            self.connectTimeout = connectTimeout
            self.timeout = timeout
            self.maximumResponseSize = maximumResponseSize
            self.caFile = caFile
        }
    }

    public let options: Options
    private let driver: MultiDriver

    public init(options: Options = Options()) {
        self.options = options
        driver = MultiDriver()
    }

    deinit { driver.stop() }

    /// Sends `request` and waits for the whole response, off the caller's thread.
    public func send(_ request: HTTPRequest) async throws(CurlError) -> HTTPResponse {
        let transfer: Transfer
        do {
            transfer = try Transfer(request: request, options: options)
        } catch let error as CurlError {
            throw error
        } catch {
            throw CurlError(.failed, "\(error)")
        }
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    transfer.continuation = continuation
                    driver.submit(transfer)
                }
            } onCancel: {
                driver.cancel(transfer)
            }
        } catch let error as CurlError {
            throw error
        } catch {
            throw CurlError(.failed, "\(error)")
        }
    }
}

/// One transfer: the easy handle and what its callbacks collect. Touched by the driver thread only,
/// once submitted, except for the continuation, which is resumed exactly once.
final class Transfer: @unchecked Sendable {
    /// Where the transfer is in its hand-over to the driver thread; read and written under the driver's mutex only.
    enum Stage {
        case created, cancelledEarly, submitted, completed
    }

    var stage = Stage.created
    let handle: UnsafeMutableRawPointer
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private let maximumSize: Int
    var body: [UInt8] = []
    var headers: [(name: String, value: String)] = []
    var tooLarge = false
    var continuation: CheckedContinuation<HTTPResponse, any Error>?
    private var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE))

    init(request: HTTPRequest, options: CurlClient.Options) throws {
        guard let handle = curl_easy_init() else { throw CurlError(.failed, "curl_easy_init failed") }
        self.handle = handle
        maximumSize = options.maximumResponseSize
        let context = Unmanaged.passUnretained(self).toOpaque()
        var ok = true
        func check(_ code: CURLcode) { ok = ok && code == CURLE_OK }
        check(detour_curl_easy_setopt_string(handle, CURLOPT_URL, request.url))
        check(detour_curl_easy_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https"))
        check(detour_curl_easy_setopt_string(handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"))
        check(detour_curl_easy_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0))
        check(detour_curl_easy_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1))
        check(detour_curl_easy_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2))
        check(detour_curl_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        check(detour_curl_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, options.connectTimeout.milliseconds))
        check(detour_curl_easy_setopt_long(handle, CURLOPT_TIMEOUT_MS, options.timeout.milliseconds))
        check(
            detour_curl_easy_setopt_offset(handle, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(options.maximumResponseSize)))
        if let caFile = options.caFile { check(detour_curl_easy_setopt_string(handle, CURLOPT_CAINFO, caFile)) }
        check(detour_curl_easy_setopt_pointer(handle, CURLOPT_PRIVATE, context))
        check(detour_curl_easy_setopt_pointer(handle, CURLOPT_WRITEDATA, context))
        check(detour_curl_easy_setopt_callback(handle, CURLOPT_WRITEFUNCTION, transferReceivedBody))
        check(detour_curl_easy_setopt_pointer(handle, CURLOPT_HEADERDATA, context))
        check(detour_curl_easy_setopt_callback(handle, CURLOPT_HEADERFUNCTION, transferReceivedHeader))
        errorBuffer.withUnsafeMutableBufferPointer { buffer in
            check(detour_curl_easy_setopt_pointer(handle, CURLOPT_ERRORBUFFER, buffer.baseAddress))
        }
        if let body = request.body {
            check(detour_curl_easy_setopt_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)))
            body.withUnsafeBufferPointer { bytes in
                check(
                    detour_curl_easy_setopt_pointer(
                        handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress)))
            }
        }
        if request.method != (request.body == nil ? "GET" : "POST") {
            check(detour_curl_easy_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method))
        }
        // An empty Expect: stops curl from waiting for 100-continue before sending a body.
        for line in request.headers.map({ "\($0.name): \($0.value)" }) + ["Expect:"] {
            headerList = curl_slist_append(headerList, line)
        }
        check(detour_curl_easy_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList))
        guard ok else {
            curl_easy_cleanup(handle)
            curl_slist_free_all(headerList)
            throw CurlError(.unsupportedURL, "libcurl refused the request's options (\(request.url))")
        }
    }

    deinit {
        curl_easy_cleanup(handle)
        curl_slist_free_all(headerList)
    }

    /// Resumes the waiting task; later calls do nothing.
    func finish(_ result: Result<HTTPResponse, CurlError>) {
        guard let continuation else { return }
        self.continuation = nil
        continuation.resume(with: result.mapError { $0 as any Error })
    }

    func receive(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard body.count + bytes.count <= maximumSize else {
            tooLarge = true
            return false
        }
        body.append(contentsOf: bytes)
        return true
    }

    func receiveHeaderLine(_ bytes: UnsafeBufferPointer<UInt8>) {
        let line = String(decoding: bytes, as: UTF8.self)
        if line.hasPrefix("HTTP/") {
            headers = []  // a new response (after 100 Continue, say) starts a new header block
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        headers.append((String(line[..<colon]), value))
    }

    /// What the finished transfer amounts to: a response, or why not.
    func outcome(_ code: CURLcode) -> Result<HTTPResponse, CurlError> {
        let detail =
            errorBuffer.withUnsafeBufferPointer { buffer in
                buffer.baseAddress.map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
            } ?? String(cString: curl_easy_strerror(code))
        switch code {
        case CURLE_OK: break
        case CURLE_WRITE_ERROR where tooLarge, CURLE_FILESIZE_EXCEEDED:
            return .failure(CurlError(.responseTooLarge, "the response is larger than \(maximumSize) bytes"))
        case CURLE_OPERATION_TIMEDOUT: return .failure(CurlError(.timedOut, detail))
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            return .failure(CurlError(.connectFailed, detail))
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE,
            CURLE_SSL_CERTPROBLEM:
            return .failure(CurlError(.tlsFailed, detail))
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT: return .failure(CurlError(.unsupportedURL, detail))
        default: return .failure(CurlError(.failed, detail))
        }
        var status = 0
        _ = detour_curl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        let response = HTTPResponse(status: status, headers: headers, body: body)
        if (300..<400).contains(status) {
            return .failure(
                CurlError(
                    .redirectRefused, "the provider answered \(status) to \(response.header("location") ?? "nowhere")"))
        }
        return .success(response)
    }
}

private let transferReceivedBody: detour_curl_data_callback = { data, size, count, context in
    guard let data, let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let bytes = UnsafeBufferPointer(
        start: UnsafeRawPointer(data).assumingMemoryBound(to: UInt8.self), count: size * count)
    return transfer.receive(bytes) ? size * count : 0
}

private let transferReceivedHeader: detour_curl_data_callback = { data, size, count, context in
    guard let data, let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    transfer.receiveHeaderLine(
        UnsafeBufferPointer(start: UnsafeRawPointer(data).assumingMemoryBound(to: UInt8.self), count: size * count))
    return size * count
}

extension Duration {
    /// Whole milliseconds, for libcurl's `_MS` options.
    var milliseconds: Int { Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000) }
}
