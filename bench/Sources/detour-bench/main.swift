import Foundation

// Release-build throughput figures. Run: swift run -c release detour-bench [redirect|policy|sessions|all] [seconds]
let arguments = CommandLine.arguments.dropFirst()
let which = arguments.first ?? "all"
let seconds = arguments.dropFirst().first.flatMap(Double.init) ?? 2
if which == "redirect" || which == "all" { try RedirectBenchmark.run(seconds: seconds) }
if which == "policy" || which == "all" { try PolicyBenchmark.run(seconds: seconds) }
if which == "sessions" || which == "all" { try SessionBenchmark.run(seconds: seconds) }

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
