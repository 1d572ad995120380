import AgentProtocol
import SMCWire
import TestSupport
import Testing

@testable import LiveCapture

/// The agent's choice of SMC dump records (`smc_type`, `smc_mode`, `data_snaplen`) on frames
/// written as the lab's dump device writes them, with the dump header layouts the calibration
/// must find by itself.
struct DumpRecordSelectionTests {
  static let client = Endpoint(IPAddress(ipv4: 0x0A00_0001), 40000)
  static let server = Endpoint(IPAddress(ipv4: 0x0A00_0002), 7000)

  /// A conversation as the kernel dumps it: per message, data records then the CDC record.
  static func conversation(
    format: DumpHeaderFormat = .declarationOrder, mode: SMCMode = .smcR, messages: Int = 6
  ) -> [[UInt8]] {
    var frames: [[UInt8]] = []
    for index in 0..<messages {
      let size = 700 + 97 * index
      let data = [UInt8](repeating: UInt8(truncatingIfNeeded: 0x41 + index), count: size)
      frames.append(frame(format.record(mode: mode, smcVersion: 1, isCDC: false, body: data)))
      let cdc: [UInt8] =
        mode == .smcR
        ? [0xFE, 0x2C] + [UInt8](repeating: UInt8(index), count: 46)
        : [0xFE] + [UInt8](repeating: UInt8(index), count: 31)
      frames.append(frame(format.record(mode: mode, smcVersion: 1, isCDC: true, body: cdc)))
    }
    return frames
  }

  static func frame(_ payload: [UInt8]) -> [UInt8] {
    FrameBuilder.udp(
      sourceMAC: 0x0200_0000_0001, destinationMAC: 0x0200_0000_0001, source: client, destination: server,
      payload: payload, checksum: false, ipChecksum: false)
  }

  static func plan(type: SMCRecordType = .all, mode: SMCCaptureMode = .all, snaplen: Int? = nil)
    -> CapturePlan
  {
    CapturePlan(
      session: "s", interfaces: ["eth0"], smcDump: .device("dump0"), smcType: type, smcMode: mode,
      dataSnaplen: snaplen)
  }

  /// Observes every frame (as the capture thread does when it reads them), then decides each
  /// (as the writer does when the window releases them): the captured length kept, or nil.
  static func run(_ selection: inout DumpRecordSelection, _ frames: [[UInt8]], observeFirst: Bool = true)
    -> [Int?]
  {
    if observeFirst {
      for frame in frames { frame.withUnsafeBytes { selection.observe($0, linkType: 1) } }
    }
    return frames.map { frame in frame.withUnsafeBytes { selection.decide($0, linkType: 1) } }
  }

  static func isCDC(_ frame: [UInt8], _ format: DumpHeaderFormat = .declarationOrder) -> Bool {
    frame[42 + format.typeOffset] == format.cdcType
  }

  @Test func cdcKeepsOnlyCDCRecordsAndCountsTheDataLeftOut() throws {
    var selection = try #require(DumpRecordSelection(Self.plan(type: .cdc)))
    let frames = Self.conversation()
    let kept = Self.run(&selection, frames)
    for (frame, length) in zip(frames, kept) {
      #expect(length == (Self.isCDC(frame) ? frame.count : nil))
    }
    let counts = selection.report
    #expect(counts.cdc == 6 && counts.leftOutData == 6 && counts.data == 0 && counts.unclassified == 0)
    #expect(counts.calibration.contains("header 16 bytes"), "\(counts.calibration)")
    #expect(counts.calibration.contains("type byte at 7 (CDC = 2)"), "\(counts.calibration)")
    #expect(counts.calibration.contains("mode byte at 6"), "\(counts.calibration)")
  }

  @Test func rawKeepsOnlyDataRecords() throws {
    var selection = try #require(DumpRecordSelection(Self.plan(type: .raw)))
    let frames = Self.conversation()
    let kept = Self.run(&selection, frames)
    for (frame, length) in zip(frames, kept) {
      #expect(length == (Self.isCDC(frame) ? nil : frame.count))
    }
    #expect(selection.report.leftOutCDC == 6 && selection.report.data == 6)
  }

  /// Another layout (20-byte header, type at 9 with CDC = 7, mode at 8, len at 10): found from
  /// the records, nothing hard-wired.
  @Test func anotherHeaderLayoutIsLearnedFromTheRecords() throws {
    let format = DumpHeaderFormat(
      length: 20, versionOffset: 4, smcVersionOffset: 5, modeOffset: 8, typeOffset: 9, lengthOffset: 10,
      cdcType: 7, dataType: 3, headerVersion: 1)
    var selection = try #require(DumpRecordSelection(Self.plan(type: .cdc)))
    let frames = Self.conversation(format: format)
    let kept = Self.run(&selection, frames)
    for (frame, length) in zip(frames, kept) {
      #expect(length == (Self.isCDC(frame, format) ? frame.count : nil))
    }
    #expect(
      selection.report.calibration.contains("type byte at 9 (CDC = 7)"), "\(selection.report.calibration)")
    #expect(selection.report.calibration.contains("mode byte at 8"))
  }

  @Test func dataSnaplenCutsDataRecordsAfterTheHeaderAndKeepsCDCWhole() throws {
    var selection = try #require(DumpRecordSelection(Self.plan(snaplen: 64)))
    let frames = Self.conversation()
    let kept = Self.run(&selection, frames)
    for (frame, length) in zip(frames, kept) {
      // Ethernet 14 + IPv4 20 + UDP 8, then the 16-byte header and 64 bytes of data.
      let cut: Int = 14 + 20 + 8 + 16 + 64
      let expected: Int = Self.isCDC(frame) ? frame.count : cut
      #expect(length == expected)
    }
    #expect(selection.report.cut == 6 && selection.report.data == 6 && selection.report.cdc == 6)
  }

  @Test func smcdLeavesOutEverySMCRRecordAndSMCRKeepsThem() throws {
    var smcd = try #require(DumpRecordSelection(Self.plan(mode: .smcd)))
    #expect(Self.run(&smcd, Self.conversation()).allSatisfy { $0 == nil })
    #expect(smcd.report.leftOutMode == 12)
    var smcr = try #require(DumpRecordSelection(Self.plan(mode: .smcr)))
    let frames = Self.conversation()
    #expect(Self.run(&smcr, frames) == frames.map(\.count))
    #expect(smcr.report.leftOutMode == 0 && smcr.report.cdc == 6 && smcr.report.data == 6)
  }

  /// SMC-D conversations calibrate from their 32-byte CDC records; `smcr` leaves them out.
  @Test func smcdConversationIsLearnedAndLeftOutBySMCR() throws {
    var selection = try #require(DumpRecordSelection(Self.plan(mode: .smcr)))
    let frames = Self.conversation(mode: .smcD, messages: 10)
    #expect(Self.run(&selection, frames).allSatisfy { $0 == nil }, "\(selection.report)")
    #expect(selection.report.leftOutMode == 20)
  }

  /// Records seen before the header could be learned are kept whole and counted, never dropped.
  @Test func recordsThatCannotBeClassifiedAreKept() throws {
    var selection = try #require(DumpRecordSelection(Self.plan(type: .cdc)))
    let frames = Self.conversation()
    let kept = Self.run(&selection, frames, observeFirst: false)
    #expect(kept == frames.map(\.count))
    #expect(selection.report.unclassified == 12 && selection.report.leftOut == 0)
    #expect(selection.report.calibration == "not calibrated yet")
    // Frames that are not dump records pass untouched and uncounted.
    let other = FrameBuilder.udp(
      sourceMAC: 1, destinationMAC: 2, source: Self.client, destination: Self.server,
      payload: [1, 2, 3, 4, 5, 6, 7, 8])
    #expect(other.withUnsafeBytes { selection.decide($0, linkType: 1) } == other.count)
    #expect(selection.report.unclassified == 12)
  }

  /// Without a CDC record the header cannot be measured: after the sample limit the learner
  /// gives up and says so, and everything is kept.
  @Test func onlyDataRecordsNeverCalibrateAndAreKept() throws {
    var selection = try #require(DumpRecordSelection(Self.plan(type: .cdc)))
    let frames = (0..<300).map { index in
      Self.frame(
        DumpHeaderFormat.declarationOrder.record(
          mode: .smcR, smcVersion: 1, isCDC: false, body: [UInt8](repeating: 7, count: 100 + index)))
    }
    #expect(Self.run(&selection, frames) == frames.map(\.count))
    #expect(selection.learner.gaveUp)
    #expect(selection.report.calibration.contains("not calibrated"), "\(selection.report.calibration)")
  }

  @Test func aPlanThatKeepsEverythingNeedsNoSelection() {
    #expect(DumpRecordSelection(Self.plan()) == nil)
    #expect(DumpRecordSelection(Self.plan(mode: .smc)) == nil)
    #expect(DumpRecordSelection(Self.plan(type: .raw)) != nil)
  }
}

/// The plan's new fields on the wire: typed, validated, unknown values named with their flag.
struct CapturePlanVolumeFieldsTests {
  func parse(_ extra: [(String, JSONValue)]) throws(AgentProtocolError) -> CapturePlan {
    try CapturePlan(
      .object([("session", .string("s")), ("interfaces", .array([.string("eth0")]))] + extra))
  }

  @Test func fieldsRoundTrip() throws {
    let plan = CapturePlan(
      session: "s", interfaces: ["eth0"], smcType: .cdc, smcMode: .smcr, dataSnaplen: 64)
    let read = try CapturePlan(.object(plan.fields))
    #expect(read == plan)
    #expect(plan.fields.contains { $0.0 == "smc_type" && $0.1 == .string("cdc") })
    // Defaults are not written: a plain plan reads the same to every agent.
    let plain = CapturePlan(session: "s", interfaces: ["eth0"])
    #expect(!plain.fields.contains { ["smc_type", "smc_mode", "data_snaplen"].contains($0.0) })
    let defaults = try parse([])
    #expect(defaults.smcType == .all && defaults.smcMode == .all && defaults.dataSnaplen == nil)
  }

  @Test func unknownValuesNameTheFieldAndTheFlag() {
    #expect {
      try parse([("smc_type", .string("data"))])
    } throws: { error in
      let error = error as? AgentProtocolError
      return error?.code == .badField && error?.message.contains("'smc_type' (--smc-type) is 'data'") == true
        && error?.message.contains("all, raw, cdc") == true
    }
    #expect {
      try parse([("smc_mode", .string("rdma"))])
    } throws: { error in
      (error as? AgentProtocolError)?.message.contains(
        "'smc_mode' (--smc-mode) is 'rdma', not one of all, smc, smcr, smcd")
        == true
    }
    #expect {
      try parse([("smc_type", .int(1))])
    } throws: { error in
      (error as? AgentProtocolError)?.message.contains("'smc_type' (--smc-type) is 1") == true
    }
    for bad: JSONValue in [.int(-1), .int(65536), .string("64")] {
      #expect {
        try parse([("data_snaplen", bad)])
      } throws: { error in
        (error as? AgentProtocolError)?.message.contains("'data_snaplen' (--data-snaplen) must be") == true
      }
    }
    #expect {
      try parse([("smc_mode", .string("smc")), ("smc_dump", .string("off"))])
    } throws: { error in
      (error as? AgentProtocolError)?.message.contains(
        "captures only the SMC dump device, but 'smc_dump' is 'off'")
        == true
    }
  }

  /// The dump device's counters travel in the status and read back as they were written.
  @Test func dumpRecordCountsRoundTripInTheStatus() throws {
    var interface = InterfaceCounters(name: "smc-dummy0")
    var counts = DumpRecordCounts()
    counts.cdc = 10
    counts.leftOutData = 7
    counts.cut = 2
    counts.calibration = "header 16 bytes"
    interface.dumpRecords = counts
    let status = StatusReply(
      session: "s", state: .capturing, interfaces: [InterfaceCounters(name: "eth0"), interface])
    let read = try StatusReply(status.json)
    #expect(read == status)
    #expect(read.interfaces[1].dumpRecords?.leftOut == 7)
    #expect(read.interfaces[0].dumpRecords == nil)
  }
}
