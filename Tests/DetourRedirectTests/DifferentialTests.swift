import Testing

@testable import DetourRedirect

/// Detour's URL reading against Node's WHATWG `URL` (the standard browsers implement), on generated inputs.
@Suite struct DifferentialTests {
    static let bases = ["https://auth.example.com/a/b?q#f", "http://localhost:4180/", "https://app.example.com:8443/x"]
    static let inputCount = 4000

    static func inputs(seed: UInt64) -> [String] {
        var generator = TargetGenerator(seed: seed)
        return (0..<inputCount).map { _ in generator.next() } + Corpus.load("open-redirects").map(\.target)
    }

    @Test(arguments: Array(bases.enumerated()))
    func parserAgreesWithNode(index: Int, base: String) throws {
        let inputs = Self.inputs(seed: 0x5EED + UInt64(index))
        let answers = try NodeURL.parse(inputs, base: base)
        #expect(answers.count == inputs.count)
        let parsedBase = try BrowserURL(parsing: base)
        var parsed = 0
        var failedAlike = 0
        for (input, answer) in zip(inputs, answers) {
            do {
                let url = try BrowserURL(parsing: input, against: parsedBase)
                #expect(answer.href == url.href, "input \(input.debugDescription)")
                parsed += 1
            } catch  where !error.browserAlsoFails {
                // Detour refuses some URLs a browser may read (other schemes, unmapped international hosts).
                if error == .unsupportedScheme {
                    #expect(answer.error == true || !["http:", "https:"].contains(answer.protocolName))
                }
            } catch {
                #expect(
                    answer.error == true,
                    "input \(input.debugDescription): Detour: \(error), Node: \(answer.href ?? "")")
                failedAlike += 1
            }
        }
        // Both outcomes must be well represented, or the comparison proves little.
        #expect(parsed > inputs.count / 3, "parsed \(parsed)")
        #expect(failedAlike > inputs.count / 20, "failed alike \(failedAlike)")
    }

    @Test func everyAllowedTargetIsWhereNodeGoes() throws {
        let policy = try Corpus.policy()
        let inputs = Self.inputs(seed: 0xA110)
        let answers = try NodeURL.parse(inputs, base: policy.base.href)
        var allowed = 0
        for (input, answer) in zip(inputs, answers) {
            guard case .allowed(let location) = policy.evaluate(input) else { continue }
            allowed += 1
            #expect(answer.href == location.href, "input \(input.debugDescription)")
            #expect(Corpus.isAllowedOrigin(answer), "input \(input.debugDescription) -> \(answer.href ?? "")")
        }
        // The generator must keep producing accepted targets, or this test proves nothing.
        #expect(allowed > 200)
    }
}
