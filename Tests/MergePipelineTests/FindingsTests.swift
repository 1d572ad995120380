import Alignment
import CaptureFiles
import SMCSynthesis
import SMCWire
import TestSupport
import Testing

@testable import MergePipeline

/// One host's view of several conversations, with `tamper` applied to the frames (in the
/// order they are written: frame n is element n - 1).
func writeCapture(
  _ scenarios: [Scenario], side: Side, to path: String, messages: Int = 6,
  tamper: ([SyntheticFrame]) -> [SyntheticFrame] = { $0 }
) throws {
  var frames: [SyntheticFrame] = []
  var start: Int64 = 1_764_000_000_000_000_000
  for (index, scenario) in scenarios.enumerated() {
    var spec = ConversationSpec(
      scenario: scenario, client: Endpoint(IPAddress(ipv4: 0x0A00_0001), UInt16(41000 + index)),
      server: Endpoint(IPAddress(ipv4: 0x0A00_0002), 7000))
    spec.startNanoseconds = start
    spec.messages = messages
    spec.seed = UInt64(index + 1)
    ConversationSynthesizer(spec: spec, side: side).generate { frame in
      start = max(start, frame.timeNanoseconds)
      frames.append(frame)
    }
    start += 1_000_000
  }
  let writer = try PcapngWriter(path: path, application: "t")
  try writer.addInterface(InterfaceDescription(name: "eth0", linkType: .ethernet))
  try writer.addInterface(InterfaceDescription(name: "smc-dummy0001", linkType: .ethernet))
  for frame in tamper(frames) {
    try writer.writePacket(
      interface: frame.interface, timestampNanoseconds: frame.timeNanoseconds, bytes: frame.bytes,
      direction: frame.direction)
  }
  try writer.close()
}

/// The findings one capture shows on its own, the way they were made before the pairing walk
/// gathered them: a full two-pass decode of the file.
func twoPassFindings(_ path: String, side: Side) throws -> [Finding] {
  let decoder = try CaptureDecoder(path: path)
  var checks = EventChecks()
  var findings: [Finding] = []
  try decoder.run { findings += checks.check($0, side: side) }
  if side == .client { findings += FindingsBuilder.fallbacks(decoder.summary.connections, side: side) }
  return findings + FindingsBuilder.captureDrops(decoder.summary.interfaces, side: side)
}

func describe(_ findings: [Finding]) -> [String] {
  findings.map {
    "\($0.kind.rawValue) \($0.side.name) \($0.timeNanoseconds ?? -1) \($0.connection): \($0.message)"
  }
}

@Suite struct FindingsFromThePairingWalk {
  static let scenarios: [Scenario] = [
    .smcR(version: 1), .smcD(version: 2), .decline(code: 0x0303_0002, version: 1), .peerNoSMC,
    .smcR(version: 2),
  ]

  /// Frame numbers (1-based) of the client's CDC records and of its TCP segments with payload
  /// on SMC connections, from an untampered copy.
  func landmarks(_ path: String) throws -> (cdc: [Int], tcpPayload: [Int]) {
    let decoder = try CaptureDecoder(path: path)
    var cdc: [Int] = []
    var tcp: [Int] = []
    try decoder.run { event in
      if event.kind == .cdc, event.cdc?.sequenceNumber ?? 0 > 1 { cdc.append(event.frame) }
      if event.kind == .tcp, event.tcpPayloadLength > 0 { tcp.append(event.frame) }
    }
    return (cdc, tcp)
  }

  @Test func equalATwoPassDecodeOfEachCapture() throws {
    let dir = try TemporaryDirectory()
    let plain = dir.file("plain.pcapng")
    try writeCapture(Self.scenarios, side: .client, to: plain)
    let marks = try landmarks(plain)
    try #require(marks.cdc.count >= 4 && marks.tcpPayload.count >= 2)
    // The client's capture: one CDC record twice (a duplicate seqno), one missing (a gap),
    // one TCP segment twice (a retransmission).
    let duplicated = marks.cdc[0] - 1
    let dropped = marks.cdc[3] - 1
    let resent = marks.tcpPayload[1] - 1
    let client = dir.file("client.pcapng")
    let server = dir.file("server.pcapng")
    try writeCapture(Self.scenarios, side: .client, to: client) { frames in
      var out: [SyntheticFrame] = []
      for (index, frame) in frames.enumerated() where index != dropped {
        out.append(frame)
        if index == duplicated || index == resent {
          var again = frame
          again.timeNanoseconds += 1_000
          out.append(again)
        }
      }
      return out
    }
    try writeCapture(Self.scenarios, side: .server, to: server)

    let observed = CaptureFindingsObserver()
    let alignment = try Aligner.align(client: client, server: server, observer: observed)
    #expect(observed.sides.count == 2)
    let expected = PerSide(
      client: try twoPassFindings(client, side: .client), server: try twoPassFindings(server, side: .server))
    #expect(describe(observed.sides.first ?? []) == describe(expected.client))
    #expect(describe(observed.sides.last ?? []) == describe(expected.server))

    let findings = FindingsBuilder.build(alignment, observed: observed)
    let kinds = Set(findings.map(\.kind))
    for kind in [Finding.Kind.seqnoDuplicate, .seqnoGap, .tcpRetransmission, .declined, .fallback] {
      #expect(kinds.contains(kind), "no \(kind.rawValue) finding in \(describe(findings))")
    }
    // The dropped record is missing from one side, whichever host sent it.
    #expect(kinds.contains(.cdcNotSent) || kinds.contains(.cdcNotReceived))
    #expect(findings.filter { $0.kind == .declined }.allSatisfy { $0.side == .side(.client) })
    let times = findings.map { $0.timeNanoseconds ?? 0 }
    #expect(times == times.sorted())
  }
}

/// A windowed walk (memory flat in the number of pairs) finds what pairing in memory finds:
/// the same per-capture findings, CDC records one side lacks and delay outliers with the
/// same thresholds.
@Suite struct WindowedFindings {
  @Test func equalTheFindingsOfPairingInMemory() throws {
    let dir = try TemporaryDirectory()
    let plain = dir.file("plain.pcapng")
    // One conversation: `writeCapture` starts each next one after its side's last frame,
    // which differs between the sides (a clock step for the windowed walk).
    let scenarios: [Scenario] = [.smcR(version: 2)]
    try writeCapture(scenarios, side: .client, to: plain, messages: 40)
    let marks = try FindingsFromThePairingWalk().landmarks(plain)
    try #require(marks.cdc.count >= 8)
    let dropped = marks.cdc[3] - 1
    let client = dir.file("client.pcapng")
    let server = dir.file("server.pcapng")
    try writeCapture(scenarios, side: .client, to: client, messages: 40) { frames in
      frames.enumerated().filter { $0.offset != dropped }.map(\.element)
    }
    // Two dump records the server received arrive 40 ms late: outliers for their kind and
    // direction (a late receive keeps the clock model feasible).
    try writeCapture(scenarios, side: .server, to: server, messages: 40) { frames in
      let received = frames.indices.filter { frames[$0].interface == 1 && frames[$0].direction == .inbound }
      let late = Set([received[5], received[11]])
      return frames.enumerated().map { index, frame in
        var frame = frame
        if late.contains(index) { frame.timeNanoseconds += 40_000_000 }
        return frame
      }
    }

    let observed = CaptureFindingsObserver()
    let inMemory = try Aligner.align(client: client, server: server, observer: observed)
    let expected = FindingsBuilder.build(inMemory, observed: observed)

    let observers = PerSide(client: CaptureFindingsObserver(), server: CaptureFindingsObserver())
    let outcome = try WindowedAligner.align(
      client: client, server: server, logFolder: dir.path, keepPairs: true,
      observers: PerSide(client: observers.client, server: observers.server))
    guard case .aligned(let windowed, let logs) = outcome else {
      Issue.record("the windowed walk did not align: \(outcome)")
      return
    }
    defer { logs.remove() }
    let pairs = try #require(logs.pairs)
    #expect(pairs.count == inMemory.pairCount)
    let found = try FindingsBuilder.build(windowed, observed: observers, logged: pairs)
    #expect(found.findings.contains { $0.kind == .delayOutlier }, "\(describe(found.findings))")
    #expect(found.findings.contains { $0.kind == .cdcNotSent || $0.kind == .cdcNotReceived })
    #expect(describe(found.findings) == describe(expected))
    #expect(
      found.thresholds.map(\.text) == FindingsBuilder.outlierThresholds(inMemory).map(\.text))
  }

  /// The k-th smallest value per group, exact, against sorting.
  @Test func groupSelectionIsExact() {
    var generator = SystemRandomNumberGenerator()
    let values: [[Int64]] = [
      (0..<5000).map { _ in Int64.random(in: -1_000_000...50_000_000, using: &generator) },
      (0..<999).map { _ in Int64.random(in: 0...100, using: &generator) },
      [Int64.min, Int64.max, 0, -1, 1],
      Array(repeating: 42, count: 300_000),
    ]
    let ranks =
      values.map { $0.count / 2 } + [Int](repeating: -1, count: GroupSelection.groups - values.count)
    let selected = GroupSelection.select(ranks: ranks) { add in
      for (group, list) in values.enumerated() { for v in list { add(group, v) } }
    }
    for (group, list) in values.enumerated() {
      #expect(selected[group] == list.sorted()[list.count / 2], "group \(group)")
    }
    #expect(selected[values.count] == nil)
  }
}
