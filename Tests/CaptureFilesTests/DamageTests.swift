import CaptureFiles
import Foundation
import TestSupport
import Testing

/// A capture cut or corrupted anywhere must give a clear error, keep the packets before the
/// damage, and never crash.
@Suite struct DamagedInput {
  func samplePcapng(_ dir: TemporaryDirectory) throws -> (
    bytes: [UInt8], packetEnds: [Int], blockStarts: [Int]
  ) {
    let path = dir.file("sample.pcapng")
    try writeSample(to: path)
    let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    // Walk the blocks to know every boundary and where each packet block ends.
    var starts: [Int] = []
    var packetEnds: [Int] = []
    var offset = 0
    while offset < bytes.count {
      starts.append(offset)
      let type = UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8
      let length =
        Int(bytes[offset + 4]) | Int(bytes[offset + 5]) << 8 | Int(bytes[offset + 6]) << 16
        | Int(bytes[offset + 7]) << 24
      offset += length
      if type == 6 { packetEnds.append(offset) }
    }
    return (bytes, packetEnds, starts)
  }

  @Test func truncationAtEveryByte() throws {
    let dir = try TemporaryDirectory()
    let (bytes, packetEnds, blockStarts) = try samplePcapng(dir)
    let path = dir.file("cut.pcapng")
    var cleanCuts = 0
    var damagedCuts = 0
    for cut in 1..<bytes.count {
      try Data(bytes[0..<cut]).write(to: URL(fileURLWithPath: path))
      let expectedPackets = packetEnds.filter { $0 <= cut }.count
      let reader: CaptureFileReader
      do {
        reader = try CaptureFileReader(path: path)
      } catch {
        // Only a cut inside the first section header may fail at open.
        #expect(cut < blockStarts[1], "open failed at cut \(cut): \(error)")
        #expect(error.code == .truncated)
        continue
      }
      var read = 0
      do {
        while try reader.next() != nil { read += 1 }
        #expect(blockStarts.contains(cut), "cut \(cut) inside a block was not reported")
        cleanCuts += 1
      } catch {
        damagedCuts += 1
        #expect(error.code == .truncated, "cut \(cut): \(error)")
        let blockStart = blockStarts.last { $0 < cut }!
        #expect(error.offset == blockStart, "cut \(cut): offset \(String(describing: error.offset))")
        #expect(error.salvagedPackets == expectedPackets)
        #expect(error.description.contains("byte offset \(blockStart)"))
        #expect(error.description.contains("\(expectedPackets) packet"))
      }
      #expect(read == expectedPackets, "cut \(cut)")
    }
    #expect(cleanCuts == blockStarts.count - 1)
    #expect(damagedCuts > 100)
  }

  @Test func truncatedClassicPcap() throws {
    let dir = try TemporaryDirectory()
    let bytes = PcapBytes.file(
      bigEndian: false, nanosecond: true, linkType: 1,
      packets: [(1, 1, [1, 2, 3, 4]), (2, 2, [5, 6, 7, 8])])
    let path = dir.file("cut.pcap")
    for cut in 24..<bytes.count {
      try Data(bytes[0..<cut]).write(to: URL(fileURLWithPath: path))
      let reader = try CaptureFileReader(path: path)
      var read = 0
      do {
        while try reader.next() != nil { read += 1 }
        #expect(cut == 24 || cut == 44, "clean end only between records (cut \(cut))")
      } catch {
        #expect(error.code == .truncated)
        #expect(error.offset == (cut < 44 ? 24 : 44))
        #expect(error.salvagedPackets == (cut < 44 ? 0 : 1))
      }
      #expect(read == (cut < 44 ? 0 : 1))
    }
  }

  @Test func randomCorruptionNeverCrashes() throws {
    let dir = try TemporaryDirectory()
    let (bytes, _, _) = try samplePcapng(dir)
    let path = dir.file("corrupt.pcapng")
    var generator = SystemRandomNumberGenerator()
    var errors = 0
    var opened = 0
    for round in 0..<1500 {
      var damaged = bytes
      let flips = 1 + round % 8
      for _ in 0..<flips {
        let at = Int.random(in: 0..<damaged.count, using: &generator)
        damaged[at] = UInt8.random(in: 0...255, using: &generator)
      }
      try Data(damaged).write(to: URL(fileURLWithPath: path))
      guard let reader = try? CaptureFileReader(path: path) else {
        errors += 1
        continue
      }
      opened += 1
      do {
        while let packet = try reader.next() {
          // Touch every byte: a bad slice would trap here.
          _ = packet.data.reduce(0) { $0 &+ $1 }
          _ = packet.comments
          _ = packet.packetID
        }
      } catch {
        errors += 1
        if let offset = error.offset { #expect(offset >= 0 && offset <= damaged.count) }
        #expect(!error.message.isEmpty)
      }
    }
    #expect(opened > 0)
    #expect(errors > 0)
  }
}
