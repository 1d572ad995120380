import AgentProtocol
import CaptureFiles

/// Where an SMC dump record sits in a frame of the dump device: the UDP payload, which starts
/// with the dump header.
struct DumpRecordFrame {
  /// Offset of the UDP payload (the dump header's first byte) in the captured frame.
  let payloadOffset: Int
  /// The UDP payload's length on the wire (UDP length − 8): the record's `len`, header included.
  let length: Int
  /// The captured bytes of the UDP payload (up to the snap length).
  let payload: UnsafeRawBufferPointer

  /// The dump record in `frame`, nil when the frame is not IPv4/UDP starting with the dump
  /// magic (0xCFD3E7A5, the one field whose value and offset are confirmed). The dump device
  /// carries Ethernet frames (raw IP link types are read too); IPv4 only, as the kernel writes.
  static func locate(_ frame: UnsafeRawBufferPointer, linkType: UInt32) -> DumpRecordFrame? {
    var offset: Int
    switch linkType {
    case 1:
      guard frame.count >= 14 else { return nil }
      var etherType = frame.u16be(12)
      offset = 14
      if etherType == 0x8100, frame.count >= 18 {
        etherType = frame.u16be(16)
        offset = 18
      }
      guard etherType == 0x0800 else { return nil }
    case 101, 12, 228:
      offset = 0
    default:
      return nil
    }
    guard frame.count >= offset + 20, frame[offset] >> 4 == 4, frame[offset + 9] == 17 else { return nil }
    let ipHeader = Int(frame[offset] & 0x0F) * 4
    guard ipHeader >= 20, frame.count >= offset + ipHeader + 8 else { return nil }
    let udp = offset + ipHeader
    let udpLength = Int(frame.u16be(udp + 4))
    guard udpLength >= 16 else { return nil }
    let start = udp + 8
    let captured = UnsafeRawBufferPointer(rebasing: frame[start..<min(frame.count, start + udpLength - 8)])
    guard captured.count >= 8, captured.u32be(0) == DumpHeaderLearner.magic else { return nil }
    return DumpRecordFrame(payloadOffset: start, length: udpLength - 8, payload: captured)
  }
}

/// Learns the dump header's layout from the first records of a capture, as far as the public
/// facts allow (docs/capture.md, "Volume control"):
///
/// - the header length H: an SMC-R CDC record carries exactly 48 bytes after the header,
///   starting `FE 2C` (an SMC-D one 32, starting `FE` when sent) [confirmed], so H is the
///   record length − 48 on records of that shape (3 agreeing records; SMC-D: 8, only when no
///   SMC-R record voted);
/// - the `len` field: the 16-bit big-endian field equal to the record length on every record
///   [confirmed: big-endian, header + payload];
/// - the `type` byte: the one byte before `len` (the kernel fills magic, hdr_ver, smc_ver, mode,
///   type, len in that order [confirmed]) that holds one value on every CDC-shaped record and
///   another on every record whose body is neither 48 nor 32 bytes (which cannot be CDC); it
///   must be the only such byte. Its numeric values are not public: the CDC value is learned.
/// - the `mode` byte: the byte just before `type` [inferred: the fill order is confirmed, the
///   one-byte width is not; it is checked: 1 on every SMC-R-shaped CDC record, 2 on every
///   32-byte CDC record seen, else it is not used].
///
/// Learning uses at most `sampleLimit` records; if the type byte is not found by then, it
/// gives up and every record it cannot classify is kept.
struct DumpHeaderLearner {
  static let magic: UInt32 = 0xCFD3_E7A5
  static let maximumHeader = 128
  static let sampleLimit = 256
  static let smcRBody = 48
  static let smcDBody = 32

  struct Sample {
    var head: [UInt8]
    var length: Int
  }

  private(set) var headerLength: Int?
  private(set) var lengthOffset: Int?
  private(set) var typeOffset: Int?
  private(set) var cdcType: UInt8?
  private(set) var modeOffset: Int?
  /// The mode byte was looked for and did not check out.
  private(set) var modeUnverified = false
  /// The sample limit was reached before the type byte was found.
  private(set) var gaveUp = false
  private var votesR: [Int: Int] = [:]
  private var votesD: [Int: Int] = [:]
  private var samples: [Sample] = []

  /// Nothing more to learn (found, or given up).
  var finished: Bool { gaveUp || (typeOffset != nil && (modeOffset != nil || modeUnverified)) }

  /// Looks at one record (while not finished).
  mutating func observe(_ record: DumpRecordFrame) {
    guard !finished else { return }
    let p = record.payload
    let n = record.length
    if headerLength == nil {
      let hR = n - Self.smcRBody
      if hR >= 8, hR <= Self.maximumHeader, p.count >= hR + 2, p[hR] == 0xFE, p[hR + 1] == 0x2C {
        votesR[hR, default: 0] += 1
      }
      let hD = n - Self.smcDBody
      if hD >= 8, hD <= Self.maximumHeader, p.count > hD, p[hD] == 0xFE { votesD[hD, default: 0] += 1 }
      if let best = votesR.max(by: { $0.value < $1.value }), best.value >= 3 {
        headerLength = best.key
      } else if votesR.isEmpty, let best = votesD.max(by: { $0.value < $1.value }), best.value >= 8 {
        headerLength = best.key
      }
    }
    samples.append(Sample(head: Array(p.prefix(Self.maximumHeader + 2)), length: n))
    learnFields()
    if !finished && samples.count >= Self.sampleLimit {
      gaveUp = true
      samples = []
    }
    if finished { samples = [] }
  }

  private mutating func learnFields() {
    guard let h = headerLength else { return }
    if lengthOffset == nil {
      // Two lengths at least, so a constant field cannot pass for `len`.
      guard Set(samples.map(\.length)).count >= 2 else { return }
      lengthOffset = (4..<(h - 1)).first { k in
        samples.allSatisfy {
          $0.head.count >= k + 2 && Int($0.head[k]) << 8 | Int($0.head[k + 1]) == $0.length
        }
      }
    }
    guard let lengthOffset else { return }
    if typeOffset == nil {
      let smcR = samples.filter { isSMCRShaped($0, h) }
      let cdc =
        smcR.isEmpty
        ? samples.filter { $0.length - h == Self.smcDBody && $0.head.count > h && $0.head[h] == 0xFE } : smcR
      let data = samples.filter { $0.length - h != Self.smcRBody && $0.length - h != Self.smcDBody }
      guard cdc.count >= 2, data.count >= 2 else { return }
      let candidates = (4..<lengthOffset).filter { j in
        let value = cdc[0].head[j]
        return cdc.allSatisfy { $0.head[j] == value } && data.allSatisfy { $0.head[j] != value }
      }
      guard candidates.count == 1, let t = candidates.first else { return }
      typeOffset = t
      cdcType = cdc[0].head[t]
    }
    guard let t = typeOffset, let cdcType, modeOffset == nil, !modeUnverified else { return }
    let m = t - 1
    let smcR = samples.filter { isSMCRShaped($0, h) }
    let smcD = samples.filter { $0.length - h == Self.smcDBody && $0.head[t] == cdcType }
    if m >= 4 && !(smcR.isEmpty && smcD.isEmpty) && smcR.allSatisfy({ $0.head[m] == 1 })
      && smcD.allSatisfy({ $0.head[m] == 2 })
    {
      modeOffset = m
    } else if !(smcR.isEmpty && smcD.isEmpty) {
      modeUnverified = true
    }
  }

  private func isSMCRShaped(_ s: Sample, _ h: Int) -> Bool {
    s.length - h == Self.smcRBody && s.head.count >= h + 2 && s.head[h] == 0xFE && s.head[h + 1] == 0x2C
  }

  /// What was learned, for people (the status's `dump_records.calibration`).
  var summary: String {
    guard let headerLength else {
      return gaveUp
        ? "dump header not calibrated: no CDC record among the first \(Self.sampleLimit) records"
        : "not calibrated yet"
    }
    var parts = ["header \(headerLength) bytes"]
    if let lengthOffset { parts.append("len at \(lengthOffset)") }
    if let typeOffset, let cdcType {
      parts.append("type byte at \(typeOffset) (CDC = \(cdcType))")
    } else {
      parts.append(
        gaveUp ? "type byte not located (CDC told by its 48-byte shape)" : "type byte not located yet")
    }
    if let modeOffset {
      parts.append("mode byte at \(modeOffset) (inferred, checked on the CDC records)")
    } else if modeUnverified {
      parts.append("mode byte not confirmed (mode told by CDC size only)")
    }
    return parts.joined(separator: ", ")
  }
}

/// Chooses and cuts the SMC dump device's records as the plan asks (`smc_type`, `smc_mode`,
/// `data_snaplen`): records are classified with what `DumpHeaderLearner` established, and a
/// record it cannot classify is kept whole and counted, never dropped.
struct DumpRecordSelection {
  let type: SMCRecordType
  let mode: SMCCaptureMode
  let dataSnaplen: Int?
  private(set) var learner = DumpHeaderLearner()
  private(set) var counts = DumpRecordCounts()

  /// Nil when the plan keeps every record whole.
  init?(_ plan: CapturePlan) {
    guard plan.selectsDumpRecords else { return nil }
    type = plan.smcType
    mode = plan.smcMode
    dataSnaplen = plan.dataSnaplen
  }

  enum Kind { case cdc, data }
  enum Mode { case smcR, smcD }

  /// Learns from a record as it comes out of the kernel (before the reorder window).
  mutating func observe(_ frame: UnsafeRawBufferPointer, linkType: UInt32) {
    guard !learner.finished, let record = DumpRecordFrame.locate(frame, linkType: linkType) else { return }
    learner.observe(record)
  }

  /// The captured length to write `frame` with (less than its length when cut), nil to leave
  /// it out. Frames that are not dump records are kept whole and not counted.
  mutating func decide(_ frame: UnsafeRawBufferPointer, linkType: UInt32) -> Int? {
    guard let record = DumpRecordFrame.locate(frame, linkType: linkType) else { return frame.count }
    let kind = classify(record)
    let recordMode = self.mode(of: record, kind: kind)
    if mode == .smcr || mode == .smcd {
      guard let recordMode else { return keepUnclassified(frame) }
      if recordMode != (mode == .smcr ? .smcR : .smcD) {
        counts.leftOutMode += 1
        return nil
      }
    }
    switch kind {
    case nil:
      return keepUnclassified(frame)
    case .cdc?:
      if type == .raw {
        counts.leftOutCDC += 1
        return nil
      }
      counts.cdc += 1
      return frame.count
    case .data?:
      if type == .cdc {
        counts.leftOutData += 1
        return nil
      }
      counts.data += 1
      if let dataSnaplen, let h = learner.headerLength {
        let keep = record.payloadOffset + h + dataSnaplen
        if keep < frame.count {
          counts.cut += 1
          return keep
        }
      }
      return frame.count
    }
  }

  private mutating func keepUnclassified(_ frame: UnsafeRawBufferPointer) -> Int {
    counts.unclassified += 1
    return frame.count
  }

  /// CDC or data: by the learned type byte; before it is known, a body of neither 48 nor 32
  /// bytes is data (CDC records have exactly those sizes) and a 48-byte body starting `FE 2C`
  /// is an SMC-R CDC; anything else is not classified (nil).
  func classify(_ record: DumpRecordFrame) -> Kind? {
    guard let h = learner.headerLength else { return nil }
    if let t = learner.typeOffset, let cdcType = learner.cdcType {
      guard record.payload.count > t else { return nil }
      return record.payload[t] == cdcType ? .cdc : .data
    }
    let body = record.length - h
    if body != DumpHeaderLearner.smcRBody && body != DumpHeaderLearner.smcDBody { return .data }
    if body == DumpHeaderLearner.smcRBody, record.payload.count >= h + 2, record.payload[h] == 0xFE,
      record.payload[h + 1] == 0x2C
    {
      return .cdc
    }
    return nil
  }

  /// SMC-R or SMC-D: by the mode byte when it checked out (1 or 2; any other value is not
  /// classified); else a CDC record's size tells (48 SMC-R, 32 SMC-D); else nil.
  func mode(of record: DumpRecordFrame, kind: Kind?) -> Mode? {
    if let m = learner.modeOffset {
      guard record.payload.count > m else { return nil }
      switch record.payload[m] {
      case 1: return .smcR
      case 2: return .smcD
      default: return nil
      }
    }
    guard kind == .cdc, let h = learner.headerLength else { return nil }
    switch record.length - h {
    case DumpHeaderLearner.smcRBody: return .smcR
    case DumpHeaderLearner.smcDBody: return .smcD
    default: return nil
    }
  }

  /// The counters with the calibration text, for `status`.
  var report: DumpRecordCounts {
    var out = counts
    out.calibration = learner.summary
    return out
  }
}
