import CCurl
import Foundation
import Synchronization

/// Drives one `curl_multi` handle on a thread of its own.
///
/// Invariant: the multi handle and every added easy handle are touched only by the driver thread;
/// other threads hand transfers over through the mutex and wake the thread with `curl_multi_wakeup`
/// (documented as callable from any thread). A transfer's continuation is resumed exactly once: by the
/// driver thread, or by `submit` for a transfer cancelled before it was ever handed over.
final class MultiDriver: @unchecked Sendable {
    private struct Handover {
        var pending: [Transfer] = []
        var cancelled: [Transfer] = []
        var running = true
    }

    private static let globalInit: Void = { _ = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()
    private let multi: UnsafeMutableRawPointer
    private let handover = Mutex(Handover())

    init() {
        _ = Self.globalInit
        guard let multi = curl_multi_init() else { preconditionFailure("curl_multi_init failed: out of memory") }
        self.multi = multi
        let thread = Thread { [self] in run() }
        thread.name = "detour-curl"
        thread.start()
    }

    func submit(_ transfer: Transfer) {
        let alreadyCancelled = handover.withLock { state in
            guard transfer.stage == .created else { return true }
            transfer.stage = .submitted
            state.pending.append(transfer)
            return false
        }
        if alreadyCancelled {
            transfer.finish(.failure(CurlError(.cancelled, "cancelled before it started")))
        } else {
            curl_multi_wakeup(multi)
        }
    }

    func cancel(_ transfer: Transfer) {
        handover.withLock { state in
            switch transfer.stage {
            case .created: transfer.stage = .cancelledEarly
            case .submitted: state.cancelled.append(transfer)
            case .cancelledEarly, .completed: break
            }
        }
        curl_multi_wakeup(multi)
    }

    func stop() {
        handover.withLock { $0.running = false }
        curl_multi_wakeup(multi)
    }

    private func run() {
        var active: [ObjectIdentifier: Transfer] = [:]
        while true {
            let (pending, cancelled, running) = handover.withLock { state in
                defer {
                    state.pending = []
                    state.cancelled = []
                }
                return (state.pending, state.cancelled, state.running)
            }
            for transfer in pending {
                if curl_multi_add_handle(multi, transfer.handle) == CURLM_OK {
                    active[ObjectIdentifier(transfer)] = transfer
                } else {
                    complete(transfer, .failure(CurlError(.failed, "curl_multi_add_handle failed")))
                }
            }
            for transfer in cancelled where active.removeValue(forKey: ObjectIdentifier(transfer)) != nil {
                curl_multi_remove_handle(multi, transfer.handle)
                complete(transfer, .failure(CurlError(.cancelled, "cancelled")))
            }
            guard running else { break }

            var stillRunning: Int32 = 0
            curl_multi_perform(multi, &stillRunning)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(multi, &queued) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                var context: UnsafeMutableRawPointer?
                _ = detour_curl_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &context)
                guard let context else { continue }
                let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
                let code = message.pointee.data.result
                curl_multi_remove_handle(multi, easy)
                active.removeValue(forKey: ObjectIdentifier(transfer))
                complete(transfer, transfer.outcome(code))
            }
            curl_multi_poll(multi, nil, 0, 1000, nil)
        }
        for transfer in active.values {
            curl_multi_remove_handle(multi, transfer.handle)
            complete(transfer, .failure(CurlError(.cancelled, "the client was shut down")))
        }
        curl_multi_cleanup(multi)
    }

    /// Finishes a submitted transfer; a cancellation arriving later finds nothing to do.
    private func complete(_ transfer: Transfer, _ result: Result<HTTPResponse, CurlError>) {
        handover.withLock { _ in transfer.stage = .completed }
        transfer.finish(result)
    }
}
