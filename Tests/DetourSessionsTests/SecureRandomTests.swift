import Testing

@testable import DetourSessions

@Suite struct SecureRandomTests {
    @Test func bytesHaveTheLengthAskedAndDiffer() {
        for count in [0, 1, 7, 8, 9, 16, 32, 33] {
            #expect(SecureRandom.bytes(count).count == count)
        }
        #expect(SecureRandom.bytes(32) != SecureRandom.bytes(32))
        let many = Set((0..<1000).map { _ in SecureRandom.bytes(16) })
        #expect(many.count == 1000)
    }

    @Test func hexIsTwoDigitsPerByte() {
        #expect(Hex.lowercase([0x00, 0x0F, 0xA5, 0xFF]) == "000fa5ff")
        #expect(Hex.lowercase([UInt8]()) == "")
        var output: [UInt8] = []
        Hex.appendUppercase(0xA5, to: &output)
        Hex.appendUppercase(0x0C, to: &output)
        #expect(String(decoding: output, as: UTF8.self) == "A50C")
    }
}
