/// Raw DEFLATE (RFC 1951) in one block with the fixed Huffman code: greedy LZ77 matches found
/// through a one-entry hash table. Far from zlib's ratio on text, but the page's columns and
/// labels repeat so much that it shrinks them several times, and the page's own small inflater
/// (fixed code only) unpacks it synchronously: the page renders without waiting for a promise.
enum FixedHuffmanDeflate {
  static func compress(_ input: [UInt8]) -> [UInt8] {
    var out = BitWriter(capacity: input.count / 2 + 64)
    out.write(0b011, bits: 3)  // BFINAL = 1, BTYPE = 01 (fixed Huffman)
    input.withUnsafeBufferPointer { bytes in
      let n = bytes.count
      var head = [Int32](repeating: -1, count: 1 << hashBits)
      head.withUnsafeMutableBufferPointer { head in
        func hash(_ i: Int) -> Int {
          let v = UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16
          return Int((v &* 2_654_435_761) >> (32 - UInt32(hashBits)))
        }
        var i = 0
        while i < n {
          var length = 0
          var distance = 0
          if i + 3 <= n {
            let h = hash(i)
            let candidate = Int(head[h])
            head[h] = Int32(i)
            if candidate >= 0 && i - candidate <= 32_768 {
              let limit = min(258, n - i)
              while length < limit && bytes[candidate + length] == bytes[i + length] { length += 1 }
              distance = i - candidate
            }
          }
          if length >= 3 {
            out.writeLength(length)
            out.writeDistance(distance)
            // Later matches may start inside this one.
            var j = i + 1
            while j < i + length && j + 3 <= n {
              head[hash(j)] = Int32(j)
              j += 1
            }
            i += length
          } else {
            out.writeLiteral(Int(bytes[i]))
            i += 1
          }
        }
      }
    }
    out.writeLiteral(256)
    return out.finish()
  }

  private static let hashBits = 15
}

/// Bits least significant first, Huffman codes most significant first (RFC 1951 §3.1.1).
private struct BitWriter {
  var bytes: [UInt8] = []
  var buffer: UInt64 = 0
  var count: UInt64 = 0

  init(capacity: Int) { bytes.reserveCapacity(capacity) }

  mutating func write(_ value: UInt32, bits: UInt32) {
    buffer |= UInt64(value) << count
    count += UInt64(bits)
    while count >= 8 {
      bytes.append(UInt8(truncatingIfNeeded: buffer))
      buffer >>= 8
      count -= 8
    }
  }

  /// A Huffman code of `bits` bits, sent most significant bit first.
  mutating func writeCode(_ code: UInt32, bits: UInt32) {
    var reversed: UInt32 = 0
    var c = code
    for _ in 0..<bits {
      reversed = reversed << 1 | c & 1
      c >>= 1
    }
    write(reversed, bits: bits)
  }

  /// Literal/length symbol 0...287 in the fixed code.
  mutating func writeLiteral(_ symbol: Int) {
    let s = UInt32(symbol)
    switch symbol {
    case 0...143: writeCode(0x30 + s, bits: 8)
    case 144...255: writeCode(0x190 + s - 144, bits: 9)
    case 256...279: writeCode(s - 256, bits: 7)
    default: writeCode(0xC0 + s - 280, bits: 8)
    }
  }

  mutating func writeLength(_ length: Int) {
    var code = 28
    while lengthBase[code] > length { code -= 1 }
    writeLiteral(257 + code)
    if lengthExtra[code] > 0 { write(UInt32(length - lengthBase[code]), bits: UInt32(lengthExtra[code])) }
  }

  mutating func writeDistance(_ distance: Int) {
    var code = 29
    while distanceBase[code] > distance { code -= 1 }
    writeCode(UInt32(code), bits: 5)
    if distanceExtra[code] > 0 {
      write(UInt32(distance - distanceBase[code]), bits: UInt32(distanceExtra[code]))
    }
  }

  mutating func finish() -> [UInt8] {
    if count > 0 { bytes.append(UInt8(truncatingIfNeeded: buffer)) }
    return bytes
  }
}

private let lengthBase = [
  3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195,
  227, 258,
]
private let lengthExtra = [
  0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
]
private let distanceBase = [
  1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
  6145,
  8193, 12289, 16385, 24577,
]
private let distanceExtra = [
  0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
]
