import SMCWire
import Testing

/// Decimal text written in place, and the two-bit SMC path fields of a CLC header.
@Suite struct DecimalTextAndPaths {
  @Test func decimalDigitsMatchSwiftsOwn() {
    let values: [UInt64] = [0, 7, 9, 10, 99, 100, 101, 12_345, 1_000_000, UInt64(UInt32.max), .max - 1, .max]
    for value in values {
      var out: [UInt8] = Array("x=".utf8)
      TextWriter.decimal(value, into: &out)
      #expect(String(decoding: out, as: UTF8.self) == "x=\(value)")
      var signed: [UInt8] = []
      TextWriter.signedDecimal(-Int64(clamping: value), into: &signed)
      #expect(String(decoding: signed, as: UTF8.self) == "\(-Int64(clamping: value))")
    }
  }

  @Test func writeDecimalFillsOnlyItsDigits() {
    var buffer = [UInt8](repeating: UInt8(ascii: "#"), count: 24)
    let count = buffer.withUnsafeMutableBytes { TextWriter.writeDecimal(UInt64.max, to: $0) }
    #expect(count == 20)
    #expect(String(decoding: buffer, as: UTF8.self) == "18446744073709551615####")
  }

  @Test func everyTwoBitValueNamesAPath() {
    for flags in 0...255 {
      let bits = UInt8(flags)
      #expect(SMCPath(lowBitsOf: bits).rawValue == bits & 3)
    }
    #expect(SMCPath(lowBitsOf: 0b1110) == .none)
    #expect(SMCPath(lowBitsOf: 0b1110 >> 2) == .both)
  }
}
