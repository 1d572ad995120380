import Alignment
import CaptureFiles
import SMCSynthesis
import SMCWire
import TestSupport
import Testing

/// Writes one host's view of several conversations into a pcapng.
func writeConversations(
  _ scenarios: [Scenario], to path: String, side: Side = .client, link: LinkType = .ethernet,
  format: DumpHeaderFormat = .declarationOrder, messages: Int = 3
) throws {
  let writer = try PcapngWriter(path: path, application: "t")
  if link == .linuxSLL2 {
    try writer.addInterface(InterfaceDescription(name: "any", linkType: .linuxSLL2))
  } else {
    try writer.addInterface(InterfaceDescription(name: "eth0", linkType: .ethernet))
    try writer.addInterface(InterfaceDescription(name: "smc-dummy0001", linkType: .ethernet))
  }
  var start: Int64 = 1_764_000_000_000_000_000
  for (index, scenario) in scenarios.enumerated() {
    var spec = ConversationSpec(
      scenario: scenario, client: Endpoint(IPAddress(ipv4: 0x0A00_0001), UInt16(41000 + index)),
      server: Endpoint(IPAddress(ipv4: 0x0A00_0002), 7000))
    spec.startNanoseconds = start
    spec.messages = messages
    spec.dumpFormat = format
    spec.seed = UInt64(index + 1)
    try ConversationSynthesizer(spec: spec, side: side).generate { frame in
      start = max(start, frame.timeNanoseconds)
      if link == .linuxSLL2 {
        try writer.writePacket(
          interface: 0, timestampNanoseconds: frame.timeNanoseconds,
          bytes: FrameBuilder.sll2(
            fromEthernet: frame.bytes, interfaceIndex: UInt32(2 + frame.interface),
            packetType: frame.direction == .outbound ? 4 : 0))
      } else {
        try writer.writePacket(
          interface: frame.interface, timestampNanoseconds: frame.timeNanoseconds, bytes: frame.bytes,
          direction: frame.direction)
      }
    }
    start += 1_000_000
  }
  try writer.close()
}

@Suite struct CaptureDecoding {
  static let all: [Scenario] = [
    .smcR(version: 1), .smcR(version: 2), .smcD(version: 1), .smcD(version: 2),
    .decline(code: 0x0303_0002, version: 1), .decline(code: 0x0307_0000, version: 2), .peerNoSMC,
  ]

  func decode(_ path: String, options: DecodeOptions = DecodeOptions()) throws -> (DecodeSummary, [SMCEvent])
  {
    let decoder = try CaptureDecoder(path: path, options: options)
    var events: [SMCEvent] = []
    try decoder.run { events.append($0) }
    return (decoder.summary, events)
  }

  @Test(arguments: [LinkType.ethernet, .linuxSLL2])
  func connectionsOutcomesAndCounts(link: LinkType) throws {
    let dir = try TemporaryDirectory()
    let path = dir.file("c.pcapng")
    try writeConversations(Self.all, to: path, link: link)
    let (summary, events) = try decode(path)
    #expect(summary.damage == nil)
    #expect(summary.connections.count == 7)
    let outcomes = summary.connections.map(\.outcome)
    #expect(outcomes[0] == .smc(.smcR))
    #expect(outcomes[1] == .smc(.smcR))
    #expect(outcomes[2] == .smc(.smcD))
    #expect(outcomes[3] == .smc(.smcD))
    #expect(outcomes[4] == .fallback(code: 0x0303_0002, inferred: false, detail: "CLC Decline NOSMCRDEV"))
    #expect(outcomes[5] == .fallback(code: 0x0307_0000, inferred: false, detail: "CLC Decline DIFFPREFIX"))
    guard case .fallback(let code, let inferred, _) = outcomes[6] else {
      Issue.record("peer without SMC: \(outcomes[6])")
      return
    }
    #expect(code == 0x0301_0000)
    #expect(inferred)
    #expect(summary.connections[0].clcVersion == 1)
    #expect(summary.connections[1].clcVersion == 2)
    // 3 messages: 3 client CDCs + 3 server CDCs, 3 data records per SMC connection.
    for c in summary.connections.prefix(4) {
      #expect(c.cdcRecords == 6)
      #expect(c.dataRecords == 3)
      #expect(c.dataBytes == 3000)
    }
    #expect(summary.events["cdc"] == 24)
    #expect(summary.events["data"] == 12)
    #expect(summary.events["clc"] == 4 * 3 + 2 * 2)
    #expect(summary.dumpLayout.headerLength == 16)
    // CDC sequence numbers and tokens: the client's CDCs carry the server's alert token.
    let first = summary.connections[0]
    let clientCDCs = events.filter { $0.kind == .cdc && $0.source.port == 41000 }
    #expect(clientCDCs.map { $0.cdc?.sequenceNumber } == [1, 2, 3])
    #expect(clientCDCs.allSatisfy { $0.cdc?.token == first.serverAlertToken })
    let serverCDCs = events.filter { $0.kind == .cdc && $0.destination.port == 41000 }
    #expect(serverCDCs.allSatisfy { $0.cdc?.token == first.clientAlertToken })
    #expect(serverCDCs.last?.cdc?.connectionState == [.peerDoneWriting, .peerClosed])
    // SMC-D data records take the connection's mode.
    #expect(events.filter { $0.kind == .data && $0.source.port == 41002 }.allSatisfy { $0.mode == .smcD })
    // Frame numbers are 1-based and increasing.
    #expect(events.first?.frame == 1)
    #expect(zip(events, events.dropFirst()).allSatisfy { $0.frame <= $1.frame })
  }

  @Test(arguments: [12, 20, 32])
  func otherHeaderSizesCalibrate(length: Int) throws {
    let format = DumpHeaderCalibration.layouts.first { $0.length == length }!
    let dir = try TemporaryDirectory()
    let path = dir.file("h.pcapng")
    try writeConversations([.smcR(version: 1), .smcD(version: 2)], to: path, side: .server, format: format)
    let (summary, _) = try decode(path)
    #expect(summary.dumpLayout.headerLength == length)
    #expect(summary.events["cdc"] == 12)
    #expect(summary.events["data"] == 6)
    #expect(summary.connections.allSatisfy { $0.dataBytes == 3000 })
  }

  @Test func wrongOverrideIsVisibleNotFatal() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file("o.pcapng")
    try writeConversations([.smcR(version: 1)], to: path)
    let (summary, events) = try decode(path, options: DecodeOptions(dumpHeaderLength: 20))
    #expect(summary.dumpLayout.source == .override)
    // With a wrong header length the records no longer look like CDC; nothing crashes.
    #expect(summary.events["cdc", default: 0] < 6)
    #expect(!events.isEmpty)
  }

  @Test func damagedFileKeepsEventsBeforeTheDamage() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file("d.pcapng")
    try writeConversations([.smcR(version: 1), .smcR(version: 1)], to: path)
    let full = try decode(path)
    let bytes = try [UInt8](contentsOf: path)
    let cut = dir.file("cut.pcapng")
    try Array(bytes[0..<(bytes.count * 2 / 3)]).write(to: cut)
    let (summary, events) = try decode(cut)
    let damage = try #require(summary.damage)
    #expect(damage.code == .truncated)
    #expect(summary.packets == damage.salvagedPackets)
    #expect(events.count > 10)
    #expect(events.count < full.1.count)
    #expect(events.map(\.frame) == full.1.prefix(events.count).map(\.frame))
  }
}

extension Array where Element == UInt8 {
  init(contentsOf path: String) throws {
    let reader = try MappedFile(path: path)
    self = Array(reader.bytes)
  }

  func write(to path: String) throws {
    let writer = try PcapngWriterRaw(path: path)
    try writer.write(self)
  }
}

/// Writes raw bytes to a file (used to produce damaged copies).
struct PcapngWriterRaw {
  let path: String
  init(path: String) throws { self.path = path }
  func write(_ bytes: [UInt8]) throws {
    guard let file = fopen(path, "wb") else { throw CaptureFileError(.io, "cannot create", path: path) }
    defer { fclose(file) }
    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
  }
}

#if canImport(Glibc)
  import Glibc
#endif

/// A message larger than the peer's ring goes in ring-sized writes, each acknowledged by the
/// consumer, as a kernel sender must: the producer never runs past the consumer (the
/// synthesiser used to crash with an arithmetic overflow on such a size).
@Suite struct LargeMessages {
  @Test(arguments: [Scenario.smcD(version: 1), .smcR(version: 1)])
  func messagesLargerThanTheRingAreWrittenInRingSizedPieces(scenario: Scenario) throws {
    var spec = ConversationSpec(
      scenario: scenario, client: Endpoint(IPAddress(ipv4: 0x0A00_0001), 41000),
      server: Endpoint(IPAddress(ipv4: 0x0A00_0002), 7000))
    spec.messages = 2
    spec.messageSize = 200_000
    let dir = try TemporaryDirectory()
    let path = dir.file("big.pcapng")
    let writer = try PcapngWriter(path: path, application: "t")
    try writer.addInterface(InterfaceDescription(name: "eth0", linkType: .ethernet))
    try writer.addInterface(InterfaceDescription(name: "smc-dummy0001", linkType: .ethernet))
    try ConversationSynthesizer(spec: spec, side: .client).generate { frame in
      try writer.writePacket(
        interface: frame.interface, timestampNanoseconds: frame.timeNanoseconds, bytes: frame.bytes,
        direction: frame.direction)
    }
    try writer.close()
    let decoder = try CaptureDecoder(path: path, options: DecodeOptions())
    var data = 0
    var producers: [CDCCursor] = []
    var consumers: [CDCCursor] = []
    try decoder.run { event in
      if event.kind == .data { data += event.dataLength ?? 0 }
      guard let cdc = event.cdc else { return }
      if event.source.port == 41000 { producers.append(cdc.producer) } else { consumers.append(cdc.consumer) }
    }
    #expect(data == 400_000)
    // Each write is acknowledged before the next: the producer is never ahead of the last
    // consumer update by more than one ring, so pieces equal acknowledgements.
    #expect(producers.count == consumers.count)
    #expect(producers.count > 2)
    #expect(producers == consumers)
  }
}
