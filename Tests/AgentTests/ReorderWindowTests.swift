import CaptureFiles
import Testing

@testable import LiveCapture

/// The reorder window on its own: packets in, written packets out, no clock involved (the
/// "now" passed in is chosen by the test).
struct ReorderWindowTests {
  struct Written: Equatable {
    var interface: Int
    var timestamp: Int64
    var byte: UInt8
    var direction: PacketDirection
    var late: Bool
  }

  final class Sink {
    var written: [Written] = []
    func write(
      _ interface: Int, _ timestamp: Int64, _ length: Int, _ data: UnsafeRawBufferPointer,
      _ direction: PacketDirection, _ late: Bool
    ) {
      #expect(length == data.count)
      written.append(
        Written(
          interface: interface, timestamp: timestamp, byte: data.first ?? 0, direction: direction, late: late)
      )
    }
  }

  func add(
    _ window: inout ReorderWindow, _ sink: Sink, source: Int, _ timestamp: Int64, byte: UInt8,
    size: Int = 100, direction: PacketDirection = .inbound
  ) {
    let data = [UInt8](repeating: byte, count: size)
    data.withUnsafeBytes {
      window.add(
        source: source, interface: source, timestamp: timestamp, originalLength: size, data: $0,
        direction: direction, write: sink.write)
    }
  }

  @Test func interleavesSourcesInTimestampOrder() {
    var window = ReorderWindow(sources: 2, windowNanoseconds: 1_000, jitterNanoseconds: 0)
    let sink = Sink()
    // Source 0 delivers a block of 1, 3, 5; source 1 later delivers 2, 4, 6.
    for t in [1, 3, 5] { add(&window, sink, source: 0, Int64(t), byte: UInt8(t)) }
    window.release(now: 0, write: sink.write)
    #expect(sink.written.isEmpty, "source 1 has delivered nothing and the window has not passed")
    for t in [2, 4, 6] { add(&window, sink, source: 1, Int64(t), byte: UInt8(t), direction: .outbound) }
    window.release(now: 0, write: sink.write)
    #expect(sink.written.map(\.timestamp) == [1, 2, 3, 4, 5])
    #expect(sink.written.map(\.byte) == [1, 2, 3, 4, 5])
    #expect(sink.written.map(\.direction) == [.inbound, .outbound, .inbound, .outbound, .inbound])
    // The window passing releases the rest; everything at the end (stop paths).
    window.release(now: 1_006, write: sink.write)
    #expect(sink.written.map(\.timestamp) == [1, 2, 3, 4, 5, 6])
    #expect(window.heldPackets == 0)
    #expect(sink.written.allSatisfy { !$0.late })
  }

  @Test func sortsWithinASourceAndFlushesEverythingOnStop() {
    var window = ReorderWindow(sources: 2, windowNanoseconds: 1_000_000, jitterNanoseconds: 0)
    let sink = Sink()
    for t in [10, 30, 20, 40] { add(&window, sink, source: 0, Int64(t), byte: UInt8(t)) }
    window.release(now: 0, all: true, write: sink.write)
    #expect(sink.written.map(\.timestamp) == [10, 20, 30, 40])
    #expect(window.heldPackets == 0 && window.heldCost == 0)
  }

  @Test func aPacketOlderThanOneWrittenIsWrittenAtOnceAndFlagged() {
    var window = ReorderWindow(sources: 2, windowNanoseconds: 100, jitterNanoseconds: 0)
    let sink = Sink()
    add(&window, sink, source: 0, 500, byte: 5)
    window.release(now: 700, write: sink.write)  // past the window: written
    #expect(sink.written.map(\.timestamp) == [500])
    add(&window, sink, source: 1, 400, byte: 4)  // arrives too late
    #expect(sink.written.map(\.timestamp) == [500, 400])
    #expect(sink.written.last?.late == true)
    #expect(window.heldPackets == 0)
  }

  @Test func theByteBudgetBoundsWhatIsHeld() {
    let budget = 10 * (100 + ReorderWindow.perPacketCost)
    var window = ReorderWindow(sources: 2, windowNanoseconds: 1 << 40, jitterNanoseconds: 0, budget: budget)
    let sink = Sink()
    // Source 1 never delivers: only the budget releases packets.
    for t in 1...25 { add(&window, sink, source: 0, Int64(t), byte: UInt8(t)) }
    #expect(window.heldPackets == 10)
    #expect(window.heldCost <= budget)
    #expect(sink.written.map(\.timestamp) == (1...15).map(Int64.init))
    window.release(now: 0, all: true, write: sink.write)
    #expect(sink.written.map(\.timestamp) == (1...25).map(Int64.init))
  }

  @Test func compactionKeepsTheBytesOfHeldPackets() {
    var window = ReorderWindow(sources: 2, windowNanoseconds: 1 << 40, jitterNanoseconds: 0, budget: 64 << 20)
    let sink = Sink()
    // Both sources busy for long enough (5 MB each) that their arenas are compacted.
    for t in 0..<10000 {
      add(&window, sink, source: t % 2, Int64(t), byte: UInt8(truncatingIfNeeded: t), size: 1000)
      if t % 100 == 99 { window.release(now: 0, write: sink.write) }
    }
    window.release(now: 0, all: true, write: sink.write)
    #expect(sink.written.count == 10000)
    #expect(sink.written.map(\.timestamp) == (0..<10000).map(Int64.init))
    #expect(sink.written.map(\.byte) == (0..<10000).map { UInt8(truncatingIfNeeded: $0) })
  }
}

struct DumpRecordDirectionTests {
  func frame(source: [UInt8], destination: [UInt8]) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: 14 + 20 + 8)
    bytes[12] = 0x08
    bytes[14] = 0x45
    bytes.replaceSubrange(26..<30, with: source)
    bytes.replaceSubrange(30..<34, with: destination)
    return bytes
  }

  @Test func sourceLocalIsOutboundDestinationLocalIsInbound() {
    let local = LocalAddresses(ipv4: [0x7F00_0001])
    let cases: [([UInt8], [UInt8], PacketDirection)] = [
      ([127, 0, 0, 1], [192, 0, 2, 7], .outbound), ([192, 0, 2, 7], [127, 0, 0, 1], .inbound),
      ([192, 0, 2, 7], [192, 0, 2, 8], .unknown), ([127, 0, 0, 1], [127, 0, 0, 1], .outbound),
    ]
    for (source, destination, expected) in cases {
      let bytes = frame(source: source, destination: destination)
      let direction = bytes.withUnsafeBytes { local.directionOfDumpRecord($0, linkType: 1) }
      #expect(direction == expected, "\(source) -> \(destination)")
    }
    let arp = [UInt8](repeating: 0, count: 42)
    #expect(arp.withUnsafeBytes { local.directionOfDumpRecord($0, linkType: 1) } == .unknown)
  }
}
