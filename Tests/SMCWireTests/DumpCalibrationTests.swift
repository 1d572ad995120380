import CaptureFiles
import SMCSynthesis
import SMCWire
import TestSupport
import Testing

/// The dump header layout is not public; calibration must find it from each capture.
@Suite struct DumpHeaderCalibration {
  static let layouts: [DumpHeaderFormat] = [
    .declarationOrder,
    // 12 bytes, packed.
    DumpHeaderFormat(
      length: 12, versionOffset: 4, smcVersionOffset: 5, modeOffset: 6, typeOffset: 7, lengthOffset: 8,
      cdcType: 1,
      dataType: 0, headerVersion: 2),
    // 20 bytes, length first, then the one-byte fields.
    DumpHeaderFormat(
      length: 20, versionOffset: 6, smcVersionOffset: 7, modeOffset: 8, typeOffset: 9, lengthOffset: 4,
      cdcType: 3,
      dataType: 4, headerVersion: 1),
    // 32 bytes with a wide reserved tail and 16-bit alignment gaps.
    DumpHeaderFormat(
      length: 32, versionOffset: 5, smcVersionOffset: 7, modeOffset: 9, typeOffset: 11, lengthOffset: 12,
      cdcType: 0x10, dataType: 0x20, headerVersion: 3),
  ]

  /// Dump records of one SMC-R and one SMC-D connection, as the client host captures them.
  func records(
    _ format: DumpHeaderFormat, modes: [Scenario] = [.smcR(version: 1), .smcD(version: 1)],
    receivedSMCDGarbage: Bool = false
  )
    -> [[UInt8]]
  {
    var out: [[UInt8]] = []
    for (index, scenario) in modes.enumerated() {
      var spec = ConversationSpec(
        scenario: scenario, client: Endpoint(IPAddress(ipv4: 0x0A00_0001), UInt16(5000 + index)),
        server: Endpoint(IPAddress(ipv4: 0x0A00_0002), 80))
      spec.dumpFormat = format
      spec.messages = 6
      spec.messageSize = 700 + index * 300
      spec.receivedSMCDGarbage = receivedSMCDGarbage
      ConversationSynthesizer(spec: spec, side: .client).generate { frame in
        if frame.interface == 1 { out.append(frame.bytes) }
      }
    }
    return out
  }

  func udpPayloads(_ frames: [[UInt8]]) -> [[UInt8]] {
    frames.map { frame in
      frame.withUnsafeBytes { raw in
        Array(FrameDecoder.decode(raw, linkType: .ethernet).payload)
      }
    }
  }

  @Test(arguments: layouts)
  func findsEachLayout(format: DumpHeaderFormat) throws {
    var calibrator = DumpHeaderCalibrator()
    let payloads = udpPayloads(records(format))
    for p in payloads { p.withUnsafeBytes { calibrator.observe($0) } }
    let layout = calibrator.layout()
    #expect(layout.source == .calibrated)
    #expect(layout.headerLength == format.length)
    #expect(layout.lengthFieldOffset == format.lengthOffset)
    #expect(layout.lengthFieldBigEndian)
    #expect(layout.typeFieldOffset == format.typeOffset)
    #expect(layout.cdcTypeValue == format.cdcType)
    #expect(layout.modeFieldOffset == format.modeOffset)
    #expect(layout.records == payloads.count)
    #expect(layout.summary.contains("header length \(format.length) bytes (calibrated"))
    // Classification with the calibrated layout: data records and CDC records of both modes.
    var cdcR = 0
    var cdcD = 0
    var dataBytes = 0
    for p in payloads {
      let content = p.withUnsafeBytes { layout.classify($0, wireLength: p.count, connectionMode: nil) }
      switch content {
      case .cdc(let m): if m.mode == .smcR { cdcR += 1 } else { cdcD += 1 }
      case .data(let n): dataBytes += n
      default: Issue.record("unexpected \(content)")
      }
    }
    #expect(cdcR == 12)
    #expect(cdcD == 12)
    #expect(dataBytes == 6 * 700 + 6 * 1000)
  }

  /// A received SMC-D CDC record is garbage but for its cursors (its type byte in the body
  /// too); the header's type byte still tells it apart, and its cursors still decode.
  @Test(arguments: layouts)
  func receivedSMCDGarbageKeepsTypeAndCursors(format: DumpHeaderFormat) throws {
    var calibrator = DumpHeaderCalibrator()
    let payloads = udpPayloads(records(format, receivedSMCDGarbage: true))
    let clean = udpPayloads(records(format))
    #expect(payloads != clean, "the received SMC-D records changed")
    for p in payloads { p.withUnsafeBytes { calibrator.observe($0) } }
    let layout = calibrator.layout()
    #expect(layout.headerLength == format.length)
    #expect(layout.typeFieldOffset == format.typeOffset)
    var cursors: [CDCCursor] = []
    var cleanCursors: [CDCCursor] = []
    for (list, out) in [(payloads, 0), (clean, 1)] {
      for p in list {
        let content = p.withUnsafeBytes { layout.classify($0, wireLength: p.count, connectionMode: nil) }
        if case .cdc(let m) = content, m.mode == .smcD {
          if out == 0 {
            cursors += [m.producer, m.consumer]
          } else {
            cleanCursors += [m.producer, m.consumer]
          }
        }
      }
    }
    #expect(cursors.count == 24)
    #expect(cursors == cleanCursors)
  }

  @Test func overrideWinsAndIsReported() {
    var calibrator = DumpHeaderCalibrator()
    for p in udpPayloads(records(.declarationOrder)) { p.withUnsafeBytes { calibrator.observe($0) } }
    let layout = calibrator.layout(overrideLength: 16)
    #expect(layout.source == .override)
    #expect(layout.headerLength == 16)
    #expect(layout.summary.contains("from --dump-header-len"))
  }

  @Test func dataOnlyCaptureCannotCalibrate() {
    var calibrator = DumpHeaderCalibrator()
    let payloads = udpPayloads(records(.declarationOrder)).filter { $0.count != 64 && $0.count != 48 }
    #expect(!payloads.isEmpty)
    for p in payloads { p.withUnsafeBytes { calibrator.observe($0) } }
    let layout = calibrator.layout()
    #expect(layout.headerLength == nil)
    #expect(layout.summary.contains("--dump-header-len"))
    let content = payloads[0].withUnsafeBytes {
      layout.classify($0, wireLength: payloads[0].count, connectionMode: nil)
    }
    guard case .unknownHeader = content else {
      Issue.record("expected unknownHeader, got \(content)")
      return
    }
  }

  @Test func smcROnlyCaptureStillFindsLengthAndType() {
    var calibrator = DumpHeaderCalibrator()
    let format = Self.layouts[2]
    for p in udpPayloads(records(format, modes: [.smcR(version: 2)])) {
      p.withUnsafeBytes { calibrator.observe($0) }
    }
    let layout = calibrator.layout()
    #expect(layout.headerLength == 20)
    #expect(layout.lengthFieldOffset == 4)
    #expect(layout.typeFieldOffset == 9)
    // With one mode only, the mode byte cannot be told from the SMC version byte.
    #expect(layout.modeFieldOffset == nil)
  }

  @Test func garbageRecordsDoNotCrashOrMislead() {
    var calibrator = DumpHeaderCalibrator()
    var rng = SeededRandom(seed: 7)
    for length in 0..<300 {
      var payload = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
      if length >= 4 { payload.replaceSubrange(0..<4, with: [0xCF, 0xD3, 0xE7, 0xA5]) }
      payload.withUnsafeBytes { calibrator.observe($0) }
      let layout = DumpHeaderLayout(source: .override, headerLength: 16)
      _ = payload.withUnsafeBytes { layout.classify($0, wireLength: length, connectionMode: .smcR) }
      _ = payload.withUnsafeBytes { layout.classify($0, wireLength: length, connectionMode: .smcD) }
    }
    let layout = calibrator.layout()
    // Random bytes rarely form FE 2C at exactly 48 from the end; whatever was found is
    // reported with its evidence, never a crash.
    #expect(layout.records == 292)  // lengths 8..<300: shorter ones cannot hold a header
  }
}
