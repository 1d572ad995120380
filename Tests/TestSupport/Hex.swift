/// Bytes from a hex string; spaces and newlines are ignored.
public func hexBytes(_ text: String) -> [UInt8] {
  let digits = text.filter { $0.isHexDigit }
  var out: [UInt8] = []
  var index = digits.startIndex
  while index < digits.endIndex {
    let next = digits.index(index, offsetBy: 2)
    out.append(UInt8(digits[index..<next], radix: 16)!)
    index = next
  }
  return out
}

/// Runs `body` with the bytes as a raw buffer.
public func withBytes<T>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
  try bytes.withUnsafeBytes(body)
}
