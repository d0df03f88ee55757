import Testing

@testable import DetourRedirect

@Suite struct CorpusTests {
    @Test func corporaAreLargeEnough() {
        #expect(Corpus.load("open-redirects").count >= 500)
        #expect(Corpus.load("benign").count >= 100)
    }

    /// Every payload is rejected, or resolves to an allowed origin: where Node goes for it is checked too.
    @Test func openRedirectPayloadsNeverLeaveTheAllowlist() throws {
        let policy = try Corpus.policy()
        let entries = Corpus.load("open-redirects")
        let answers = try NodeURL.parse(entries.map(\.target), base: policy.base.href)
        var rejected = 0
        for (entry, answer) in zip(entries, answers) {
            switch policy.evaluate(entry.target) {
            case .rejected: rejected += 1
            case .allowed(let url):
                #expect(url.href == answer.href, "\(entry.target.debugDescription) (\(entry.source))")
                #expect(Corpus.isAllowedOrigin(answer), "\(entry.target.debugDescription) -> \(url) (\(entry.source))")
            }
        }
        // Most payloads name a foreign host; only the odd relative spelling may stay on an allowed origin.
        #expect(rejected * 10 >= entries.count * 9)
    }

    @Test func benignTargetsAreAcceptedWhereTheBrowserGoes() throws {
        let policy = try Corpus.policy()
        let entries = Corpus.load("benign")
        let answers = try NodeURL.parse(entries.map(\.target), base: policy.base.href)
        for (entry, answer) in zip(entries, answers) {
            let verdict = policy.evaluate(entry.target)
            #expect(verdict.location?.href == answer.href, "\(entry.target.debugDescription): \(verdict)")
        }
    }
}
