import CaptureFiles
import SMCWire
import TestSupport
import Testing

/// CLC reassembly limits: what happens to streams that never complete.
@Suite struct CLCReassemblyLimits {
  static let client = Endpoint(IPAddress(ipv4: 0x0A00_0001), 41000)
  static let server = Endpoint(IPAddress(ipv4: 0x0A00_0002), 7000)
  static let start: Int64 = 1_764_000_000_000_000_000

  func segment(
    _ from: Endpoint, _ to: Endpoint, seq: UInt32, flags: TCPFlags, smc: Bool = false, _ payload: [UInt8] = []
  )
    -> [UInt8]
  {
    FrameBuilder.tcp(
      sourceMAC: 1, destinationMAC: 2, source: from, destination: to,
      segment: .init(sequence: seq, acknowledgment: 1, flags: flags, smcOption: smc), payload: payload)
  }

  func decode(_ frames: [[UInt8]]) throws -> (DecodeSummary, [SMCEvent]) {
    let dir = try TemporaryDirectory()
    let path = dir.file("r.pcapng")
    let writer = try PcapngWriter(path: path, application: "t")
    try writer.addInterface(InterfaceDescription(name: "eth0", linkType: .ethernet))
    for (index, frame) in frames.enumerated() {
      try writer.writePacket(
        interface: 0, timestampNanoseconds: Self.start + Int64(index) * 1000, bytes: frame)
    }
    try writer.close()
    let decoder = try CaptureDecoder(path: path)
    var events: [SMCEvent] = []
    try decoder.run { events.append($0) }
    return (decoder.summary, events)
  }

  @Test func aDirectionThatNeedsMoreThanTheBufferIsReportedAndDropped() throws {
    let isn: UInt32 = 5000
    var frames = [segment(Self.client, Self.server, seq: isn, flags: [.syn], smc: true)]
    // A gap of 100 bytes after the SYN that is never filled, then 50 segments of 1400 bytes
    // (70,000 bytes) waiting behind it.
    for index in 0..<50 {
      frames.append(
        segment(
          Self.client, Self.server, seq: isn &+ 101 &+ UInt32(index * 1400), flags: [.psh, .ack],
          [UInt8](repeating: 0x41, count: 1400)))
    }
    let (summary, events) = try decode(frames)
    #expect(summary.clcStreamsOverflowed == 1)
    #expect(summary.clcBufferLimit == 65_536)
    let noted = events.filter { $0.note?.contains("CLC reassembly") == true }
    #expect(noted.count == 1)
    // 47 segments fit (65,800 bytes would not): the one that overflows is the 47th.
    #expect(noted.first?.frame == 1 + 47)
    #expect(events.allSatisfy { $0.kind != .clc })
  }

  @Test func aMessageWhoseEndNeverArrivesIsReportedWithANote() throws {
    let proposal = ThirdParty.proposalIPv4
    let isn: UInt32 = 9000
    let frames = [
      segment(Self.client, Self.server, seq: isn, flags: [.syn], smc: true),
      segment(Self.server, Self.client, seq: 1, flags: [.syn, .ack], smc: true),
      segment(Self.client, Self.server, seq: isn &+ 1, flags: [.psh, .ack], Array(proposal[0..<20])),
      segment(Self.server, Self.client, seq: 2, flags: [.ack]),
    ]
    let (summary, events) = try decode(frames)
    let clc = events.filter { $0.kind == .clc }
    #expect(clc.count == 1)
    let event = try #require(clc.first)
    #expect(event.frame == 3)
    #expect(event.clc?.kind == .proposal)
    #expect(event.note == "the capture ends before this CLC message does: 20 of 52 bytes arrived")
    #expect(summary.clcProblems == 1)
    #expect(summary.connections.first?.outcome == .negotiating)
  }
}
