public import DetourGateway

/// Where one request goes: Detour answers it (its endpoints, from a body read whole; the matrix's answers, from
/// the head alone) or an upstream does (streamed).
public enum Dispatch: Sendable {
    case respond(@Sendable (EndpointRequest) async -> Answer)
    /// As ``respond(_:)``, reading a body of up to `upTo` bytes rather than an endpoint's (a form kept across
    /// sign-in, row A2b).
    case respondReading(upTo: Int, @Sendable (EndpointRequest) async -> Answer)
    /// Detour's answer, known from the request's head alone (a matrix row, a refusal): a body the request announced
    /// is not wanted, so it is read and dropped for a while and the connection then closes. A large upload to the
    /// plain listener gets its 308, to a protected route its 401 or 302, not a 413 for Detour's own endpoints.
    case answer(Answer)
    case proxy(ProxyPlan)
    /// Decided after an asynchronous step (validating a bearer token, refreshing a session), which runs
    /// off the event loop while the request's body waits.
    case later(@Sendable () async -> Dispatch)
}
