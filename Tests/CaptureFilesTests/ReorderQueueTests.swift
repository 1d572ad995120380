import CaptureFiles
import Foundation
import TestSupport
import Testing

/// ReorderQueue: items back in time order within the window, late ones counted, and the
/// window `covering` measures puts a whole file in order.
@Suite struct ReorderQueueOrdering {
  static let ms: Int64 = 1_000_000

  /// Pushes `times` (item = its index), popping whatever the window releases, then drains.
  static func run(_ times: [Int64], window: TimeOrderedPackets.Window) -> (order: [Int], late: Int, most: Int)
  {
    var queue = ReorderQueue<Int>(window: window)
    var order: [Int] = []
    var most = 0
    for (index, time) in times.enumerated() {
      queue.push(index, time: time)
      most = max(most, queue.count)
      while let (_, item) = queue.pop() { order.append(item) }
    }
    while let (_, item) = queue.pop(draining: true) { order.append(item) }
    return (order, queue.lateArrivals, most)
  }

  @Test func inOrderAndEqualTimesKeepPushOrder() {
    let times = (0..<1000).map { Int64($0 / 3) * Self.ms }
    let result = Self.run(times, window: .init(nanoseconds: 10 * Self.ms, packets: 64))
    #expect(result.order == Array(0..<1000))
    #expect(result.late == 0)
    #expect(result.most <= 64)
  }

  @Test func disorderWithinTheWindowIsSorted() {
    // Neighbours swapped and every tenth item 5 ms early: all within 10 ms.
    var times = (0..<2000).map { Int64($0) * Self.ms }
    for i in stride(from: 0, to: times.count - 1, by: 2) { times.swapAt(i, i + 1) }
    for i in stride(from: 10, to: times.count, by: 10) { times[i] -= 5 * Self.ms }
    let result = Self.run(times, window: .init(nanoseconds: 10 * Self.ms, packets: 10_000))
    let released = result.order.map { times[$0] }
    #expect(released == released.sorted())
    #expect(Set(result.order).count == times.count)
    #expect(result.late == 0)
    // Memory follows the window, not the number of items.
    #expect(result.most <= 16)
  }

  @Test func beyondTheWindowIsCountedLate() {
    let times = (0..<100).map { Int64($0) * Self.ms } + [0]
    let result = Self.run(times, window: .init(nanoseconds: 10 * Self.ms, packets: 1000))
    #expect(result.late == 1)
    #expect(result.order.count == times.count)
  }

  @Test func coveringWindowPutsTheWholeFileInOrder() throws {
    let dir = try TemporaryDirectory()
    // Second half (5 s) first: the first packet comes 9.99 s after the last one.
    let base: Int64 = 1_764_000_000_000_000_000
    let inOrder = (0..<1000).map { base + Int64($0) * 10 * Self.ms }
    let times = Array(inOrder[500...] + inOrder[..<500])
    let packets = times.map { time in
      (seconds: UInt32(time / 1_000_000_000), fraction: UInt32(time % 1_000_000_000), data: [UInt8(1)])
    }
    let path = dir.file("halves.pcap")
    try Data(PcapBytes.file(bigEndian: false, nanosecond: true, linkType: 1, packets: packets)).write(
      to: URL(fileURLWithPath: path))
    let window = try TimeOrderedPackets.Window.covering(path: path) { $0.timestampNanoseconds }
    #expect(window.nanoseconds == 999 * 10 * Self.ms)
    #expect(window.packets == .max)
    let result = Self.run(times, window: window)
    #expect(result.late == 0)
    let released = result.order.map { times[$0] }
    #expect(released == released.sorted())
    // The standard window is too narrow for it: one late item, which the merge takes as the
    // sign to measure and write again.
    #expect(Self.run(times, window: .init(nanoseconds: 2_000_000_000, packets: 100_000)).late > 0)
  }
}
