import Foundation

/// libFuzzer's entry: the target is named by `DETOUR_FUZZ_TARGET`.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzEntry.target.run(start.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? [])
    return 0
}

enum FuzzEntry {
    static let target: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["DETOUR_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
            FileHandle.standardError.write(Data("DETOUR_FUZZ_TARGET must be one of: \(names)\n".utf8))
            exit(2)
        }
        return target
    }()
}

#if FUZZING
    /// libFuzzer's driver, from its runtime (`-sanitize=fuzzer`).
    @_silgen_name("LLVMFuzzerRunDriver")
    func runFuzzerDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    /// The executable's entry under libFuzzer. SwiftPM links every executable to start at `<target>_main`, so that
    /// is where libFuzzer's driver is started, with ``fuzzOne(_:_:)`` as the target.
    @_cdecl("detour_fuzz_main")
    func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
        var argc = argc
        var argv = argv
        return runFuzzerDriver(&argc, &argv) { start, count in fuzzOne(start, count) }
    }
#else
    /// Without libFuzzer: `detour-fuzz TARGET FILE...` runs each file through the target once (a corpus replay).
    @main struct Replay {
        static func main() throws {
            let arguments = CommandLine.arguments.dropFirst()
            guard let name = arguments.first, let target = FuzzTarget(rawValue: name) else {
                print("usage: detour-fuzz \(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")) FILE...")
                exit(2)
            }
            for file in arguments.dropFirst() {
                target.run(Array(try Data(contentsOf: URL(fileURLWithPath: file))))
            }
            print("\(name): \(arguments.count - 1) inputs replayed")
        }
    }
#endif
