public import DetourGateway

/// Where one request goes: Detour answers it (its endpoints and the matrix's answers, from a body read
/// whole) or an upstream does (streamed).
public enum Dispatch: Sendable {
    case respond(@Sendable (EndpointRequest) async -> Answer)
    case proxy(ProxyPlan)
    /// Decided after an asynchronous step (validating a bearer token, refreshing a session), which runs
    /// off the event loop while the request's body waits.
    case later(@Sendable () async -> Dispatch)
}
