import CaptureFiles
import Foundation
import TestSupport
import Testing

/// A nanosecond pcap whose packet `i` carries the single byte `i` and the time `times[i]`.
private func pcap(times: [Int64], in dir: TemporaryDirectory, truncateLast: Int = 0) throws -> String {
  let packets = times.enumerated().map { index, time in
    (
      seconds: UInt32(time / 1_000_000_000), fraction: UInt32(time % 1_000_000_000),
      data: [UInt8(truncatingIfNeeded: index)]
    )
  }
  var bytes = PcapBytes.file(bigEndian: false, nanosecond: true, linkType: 1, packets: packets)
  bytes.removeLast(truncateLast)
  let path = dir.file("t.pcap")
  try Data(bytes).write(to: URL(fileURLWithPath: path))
  return path
}

/// Reads everything: (file frame number, time) in the order returned.
private func readOrdered(_ reader: TimeOrderedPackets) throws -> [(frame: Int, time: Int64)] {
  var out: [(frame: Int, time: Int64)] = []
  while let packet = try reader.next() {
    // The data byte names the packet's place in the file: frame numbers are the file's.
    #expect(Int(packet.data.first ?? 0xFF) == (packet.frame - 1) % 256)
    out.append((packet.frame, packet.timestampNanoseconds))
  }
  return out
}

@Suite struct TimeOrderedReading {
  static let ms: Int64 = 1_000_000
  static let base: Int64 = 1_764_000_000_000_000_000

  @Test func fileInTimeOrderIsReturnedUnchanged() throws {
    let dir = try TemporaryDirectory()
    // Equal timestamps included: they keep file order.
    let times = (0..<200).map { Self.base + Int64($0 / 2) * 7 * Self.ms }
    let reader = try TimeOrderedPackets(path: try pcap(times: times, in: dir))
    let out = try readOrdered(reader)
    #expect(out.map(\.frame) == Array(1...200))
    #expect(reader.outOfOrder == 0)
    #expect(reader.beyondWindow == 0)
    #expect(reader.packetCount == 200)
  }

  @Test func packetsShuffledWithinTheWindowComeOutSorted() throws {
    let dir = try TemporaryDirectory()
    // 300 packets 10 ms apart, written in reversed runs of 25 (per-interface runs, 240 ms).
    var times: [Int64] = []
    for run in stride(from: 0, to: 300, by: 25) {
      for i in (run..<(run + 25)).reversed() { times.append(Self.base + Int64(i) * 10 * Self.ms) }
    }
    let reader = try TimeOrderedPackets(path: try pcap(times: times, in: dir))
    let out = try readOrdered(reader)
    #expect(out.count == 300)
    #expect(out.map(\.time) == times.sorted())
    #expect(Set(out.map(\.frame)) == Set(1...300))
    #expect(reader.outOfOrder == 12 * 24)
    #expect(reader.beyondWindow == 0)
  }

  @Test func packetsLaterThanTheWindowAreReturnedAtOnceAndCounted() throws {
    let dir = try TemporaryDirectory()
    let s: Int64 = 1_000_000_000
    // 0 s ... 5 s, then one packet from 0.5 s: by then everything up to 3 s has gone out.
    let times = (0...5).map { Self.base + Int64($0) * s } + [Self.base + s / 2]
    let reader = try TimeOrderedPackets(
      path: try pcap(times: times, in: dir), window: .init(nanoseconds: s, packets: 1000))
    let out = try readOrdered(reader)
    #expect(out.map(\.frame) == [1, 2, 3, 4, 7, 5, 6])
    #expect(reader.beyondWindow == 1)
    #expect(reader.outOfOrder == 1)
  }

  @Test func thePacketBoundReleasesTheEarliestWhenFull() throws {
    let dir = try TemporaryDirectory()
    // Ten packets in reverse time order, a window of four packets: the first six released
    // are the earliest of what is held, the rest are late.
    let times = (0..<10).reversed().map { Self.base + Int64($0) * Self.ms }
    let reader = try TimeOrderedPackets(
      path: try pcap(times: times, in: dir), window: .init(nanoseconds: 10_000 * Self.ms, packets: 4))
    let out = try readOrdered(reader)
    #expect(out.count == 10)
    #expect(Array(out.map(\.frame).prefix(1)) == [4])
    #expect(reader.beyondWindow == 6)
    #expect(reader.outOfOrder == 9)
  }

  @Test func damageIsThrownAfterEveryIntactPacket() throws {
    let dir = try TemporaryDirectory()
    let times = [3, 1, 2, 0].map { Self.base + Int64($0) * Self.ms }
    // Cut the last record inside its data: three intact packets, then damage.
    let reader = try TimeOrderedPackets(path: try pcap(times: times, in: dir, truncateLast: 1))
    var frames: [Int] = []
    var damage: CaptureFileError?
    do {
      while let packet = try reader.next() { frames.append(packet.frame) }
    } catch {
      damage = error
    }
    #expect(frames == [2, 3, 1])
    #expect(damage?.code == .truncated)
    #expect(try reader.next()?.frame == nil)
  }
}
