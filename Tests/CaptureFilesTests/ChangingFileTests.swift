import CaptureFiles
import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// A capture file that is cut while it is read (a copy still being written, a file rotated
/// or truncated by another program) ends the read with a truncation at a byte offset; the
/// mapping never kills the process with SIGBUS, not even for packets read before the cut.
@Suite(.serialized) struct ChangingFile {
  /// A synthetic capture of at least 8 MiB.
  func largeCapture(_ dir: TemporaryDirectory) throws -> String {
    let path = dir.file("large.pcapng")
    let result = try Tools.run([
      try Tools.product("smcpair-synth"), "--out", path, "--scenario", "mixed", "--connections", "60",
      "--messages", "120", "--size", "1000",
    ])
    try #require(result.status == 0, "\(result.stderr)")
    let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
    try #require(size >= 8 << 20, "\(size) bytes")
    return path
  }

  /// Reads `reader` to its end; the error it ends with, if any.
  func readToEnd(_ reader: CaptureFileReader) -> CaptureFileError? {
    do {
      while try reader.next() != nil {}
      return nil
    } catch {
      return error
    }
  }

  /// Touches every byte of `packets` (their pages may be gone from the file).
  func touch(_ packets: [CapturedPacket]) -> Int {
    packets.reduce(0) { sum, packet in packet.data.reduce(sum) { $0 &+ Int($1) } }
  }

  @Test(arguments: [
    // (read up to, cut at): the cut behind the reader, ahead of it, and inside the MiB it reads.
    (3 << 20, 2 << 20), (1 << 20 + 500_000, 5 << 20), (4 << 20 + 100, 4 << 20 + 5000),
  ])
  func aCaptureCutWhileReadEndsWithATruncationNotASignal(readTo: Int, cutAt: Int) throws {
    let dir = try TemporaryDirectory()
    let path = try largeCapture(dir)
    let reader = try CaptureFileReader(path: path)
    var held: [CapturedPacket] = []
    while reader.currentOffset < readTo, let packet = try reader.next() { held.append(packet) }
    try #require(truncate(path, off_t(cutAt)) == 0)
    let error = try #require(readToEnd(reader), "a cut file must not read as complete")
    #expect(error.code == .truncated, "\(error)")
    #expect(error.description.contains("shrank"), "\(error)")
    let offset = try #require(error.offset)
    #expect(offset <= cutAt, "\(error)")
    #expect(error.description.contains("byte offset \(offset)"))
    #expect(error.salvagedPackets >= held.count)
    // Packets read before the cut stay readable memory (zeros where the file vanished).
    _ = touch(held)
  }

  /// A file emptied while read (`> file` by a rotating logger).
  @Test func aCaptureEmptiedWhileReadEndsAtOffsetZeroOrLater() throws {
    let dir = try TemporaryDirectory()
    let path = try largeCapture(dir)
    let reader = try CaptureFileReader(path: path)
    var held: [CapturedPacket] = []
    for _ in 0..<1000 { held.append(try #require(try reader.next())) }
    try #require(truncate(path, 0) == 0)
    let error = try #require(readToEnd(reader))
    #expect(error.code == .truncated && error.offset == 0, "\(error)")
    _ = touch(held)
  }
}
