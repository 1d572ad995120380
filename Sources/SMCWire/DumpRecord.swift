import CaptureFiles

/// What a dump-header calibration found, or was told.
///
/// The dump header's field offsets are not public (see docs/formats.md), so they are
/// measured per capture: the header length H from SMC-R CDC records (always 48 payload
/// bytes starting `FE 2C`) or SMC-D CDC records (32 bytes), then the `len` field (a 16-bit
/// field equal to the UDP payload length) and the `type` byte (the one that separates CDC
/// from data records).
public struct DumpHeaderLayout: Sendable, Equatable {
  public enum Source: String, Sendable {
    /// Measured from this capture's records.
    case calibrated
    /// Given with `--dump-header-len`.
    case override
    /// No dump records, or none that could calibrate the header.
    case unknown
  }

  public var source: Source
  /// Header length in bytes, nil when it could not be established.
  public var headerLength: Int?
  /// Offset of the 16-bit length field, and whether it is big-endian.
  public var lengthFieldOffset: Int?
  public var lengthFieldBigEndian = true
  /// Offset of the record-type byte and its value on CDC records.
  public var typeFieldOffset: Int?
  public var cdcTypeValue: UInt8?
  /// Offset of the mode byte (1 = SMC-R, 2 = SMC-D), when both modes were present to tell it.
  public var modeFieldOffset: Int?
  /// Records with the dump magic that were seen.
  public var records = 0
  /// CDC records whose shape agreed with `headerLength`.
  public var agreeingRecords = 0
  /// Records whose shape contradicted the chosen length (a mixed capture, or damage).
  public var disagreeingRecords = 0

  public init(source: Source, headerLength: Int? = nil) {
    self.source = source
    self.headerLength = headerLength
  }

  /// One line for people: what was found and from how much evidence.
  public var summary: String {
    guard let headerLength else {
      if records == 0 { return "no SMC dump records" }
      return
        "dump header length unknown: \(records) dump records but no CDC record to calibrate from; pass --dump-header-len N"
    }
    var parts: [String] = []
    switch source {
    case .override: parts.append("header length \(headerLength) bytes (from --dump-header-len)")
    case .calibrated:
      parts.append("header length \(headerLength) bytes (calibrated from \(agreeingRecords) CDC records)")
    case .unknown: parts.append("header length \(headerLength) bytes")
    }
    if let lengthFieldOffset {
      parts.append(
        "len field at offset \(lengthFieldOffset) (\(lengthFieldBigEndian ? "big" : "little")-endian)")
    } else {
      parts.append("len field not located")
    }
    if let typeFieldOffset, let cdcTypeValue {
      parts.append("type byte at offset \(typeFieldOffset) (CDC = \(cdcTypeValue))")
    } else {
      parts.append("type byte not located (CDC told apart by size and FE 2C)")
    }
    if let modeFieldOffset { parts.append("mode byte at offset \(modeFieldOffset)") }
    if disagreeingRecords > 0 { parts.append("\(disagreeingRecords) records did not fit") }
    return parts.joined(separator: ", ")
  }
}

/// Gathers evidence from dump records (pass 1) and produces a `DumpHeaderLayout`.
public struct DumpHeaderCalibrator: Sendable {
  /// The dump header magic, big-endian at offset 0.
  public static let magic: UInt32 = 0xCFD3_E7A5
  static let maximumHeader = 128
  static let sampleLimit = 512

  struct Sample: Sendable {
    var head: [UInt8]
    var payloadLength: Int
  }

  private var votesR = [Int](repeating: 0, count: maximumHeader + 1)
  private var votesD = [Int](repeating: 0, count: maximumHeader + 1)
  private var cdcLikeSamples: [Sample] = []
  private var otherSamples: [Sample] = []
  public private(set) var records = 0

  public init() {}

  public static func isDumpRecord(_ payload: UnsafeRawBufferPointer) -> Bool {
    payload.count >= 8 && payload.u32be(0) == magic
  }

  /// Looks at one UDP payload that starts with the dump magic.
  public mutating func observe(_ payload: UnsafeRawBufferPointer) {
    guard DumpHeaderCalibrator.isDumpRecord(payload) else { return }
    records += 1
    let n = payload.count
    var cdcLike = false
    let hR = n - CDCRecord.smcRPayload
    if hR >= 4, hR <= DumpHeaderCalibrator.maximumHeader, payload.u8(hR) == 0xFE, payload.u8(hR + 1) == 0x2C {
      votesR[hR] += 1
      cdcLike = true
    }
    let hD = n - CDCRecord.smcDPayload
    if hD >= 4, hD <= DumpHeaderCalibrator.maximumHeader, payload.u8(hD) == 0xFE {
      votesD[hD] += 1
      cdcLike = true
    }
    let keep = min(n, DumpHeaderCalibrator.maximumHeader + 2)
    if cdcLike {
      if cdcLikeSamples.count < DumpHeaderCalibrator.sampleLimit {
        cdcLikeSamples.append(Sample(head: Array(payload.slice(0, keep)), payloadLength: n))
      }
    } else if otherSamples.count < DumpHeaderCalibrator.sampleLimit {
      otherSamples.append(Sample(head: Array(payload.slice(0, keep)), payloadLength: n))
    }
  }

  /// The layout this evidence supports. `overrideLength` wins over the votes.
  public func layout(overrideLength: Int? = nil) -> DumpHeaderLayout {
    var layout = DumpHeaderLayout(source: .unknown)
    layout.records = records
    if let overrideLength {
      layout.source = .override
      layout.headerLength = overrideLength
    } else if let voted = votedHeaderLength() {
      layout.source = .calibrated
      layout.headerLength = voted
    }
    guard let h = layout.headerLength else { return layout }

    let samples = SampleGroups(cdcLike: cdcLikeSamples, other: otherSamples, headerLength: h)
    layout.agreeingRecords =
      samples.cdcR.isEmpty ? votesD[min(h, votesD.count - 1)] : votesR[min(h, votesR.count - 1)]
    layout.disagreeingRecords = max(0, cdcLikeSamples.count - samples.cdc.count)
    if let field = Self.lengthField(samples.all, headerLength: h) {
      layout.lengthFieldOffset = field.offset
      layout.lengthFieldBigEndian = field.bigEndian
    }
    if let field = Self.typeField(samples, headerLength: h, lengthFieldOffset: layout.lengthFieldOffset) {
      layout.typeFieldOffset = field.offset
      layout.cdcTypeValue = field.cdcValue
    }
    layout.modeFieldOffset = Self.modeField(samples, headerLength: h)
    return layout
  }

  /// The header length most votes support (the shortest on a tie): FE 2C + exact 48-byte
  /// shape is the strong signature, so SMC-R votes win; SMC-D's single FE is weaker. Nil
  /// without any vote.
  private func votedHeaderLength() -> Int? {
    func winner(_ votes: [Int]) -> Int? {
      guard let best = votes.indices.max(by: { votes[$0] < votes[$1] }), votes[best] > 0 else { return nil }
      return best
    }
    return winner(votesR) ?? winner(votesD)
  }

  /// The samples sorted by what they are with a header of `headerLength` bytes.
  struct SampleGroups {
    let all: [Sample]
    /// CDC records: SMC-R (`cdcR`) and SMC-D (`cdcD`).
    private(set) var cdc: [Sample] = []
    private(set) var cdcR: [Sample] = []
    private(set) var cdcD: [Sample] = []
    private(set) var other: [Sample] = []

    init(cdcLike: [Sample], other otherLike: [Sample], headerLength h: Int) {
      all = cdcLike + otherLike
      for s in all {
        let body = s.payloadLength - h
        let hasFE = s.head.count > h && s.head[h] == 0xFE
        if body == CDCRecord.smcRPayload && hasFE && s.head.count > h + 1 && s.head[h + 1] == 0x2C {
          cdc.append(s)
          cdcR.append(s)
        } else if body == CDCRecord.smcDPayload && hasFE {
          cdc.append(s)
          cdcD.append(s)
        } else {
          other.append(s)
        }
      }
    }
  }

  /// The len field: a 16-bit field equal to the UDP payload length on every sample.
  static func lengthField(_ all: [Sample], headerLength h: Int) -> (offset: Int, bigEndian: Bool)? {
    guard !all.isEmpty else { return nil }
    for k in 4..<max(4, h - 1) {
      for bigEndian in [true, false] {
        let fits = all.allSatisfy { s in
          guard s.head.count >= k + 2 else { return false }
          let v =
            bigEndian
            ? Int(s.head[k]) << 8 | Int(s.head[k + 1]) : Int(s.head[k + 1]) << 8 | Int(s.head[k])
          return v == s.payloadLength
        }
        // A field that is 0 or constant could match by chance only if all lengths are equal.
        let distinct = Set(all.map(\.payloadLength)).count
        if fits && (distinct > 1 || all.count == 1 || k == 8) {
          return (k, bigEndian)
        }
      }
    }
    return nil
  }

  /// The type byte: constant on CDC records, different on every other record — except on
  /// records of received SMC-D CDCs, whose body (type byte included) is garbage but for the
  /// cursors: they have the CDC value and a 32-byte body.
  static func typeField(_ samples: SampleGroups, headerLength h: Int, lengthFieldOffset: Int?)
    -> (offset: Int, cdcValue: UInt8)?
  {
    let cdc = samples.cdc
    let other = samples.other
    guard let first = cdc.first, !other.isEmpty else { return nil }
    for j in 4..<h {
      if let lf = lengthFieldOffset, j == lf || j == lf + 1 { continue }
      let value = first.head[j]
      guard cdc.allSatisfy({ $0.head[j] == value }) else { continue }
      guard
        other.allSatisfy({
          $0.head.count > j && ($0.head[j] != value || $0.payloadLength - h == CDCRecord.smcDPayload)
        })
      else { continue }
      // Some record must tell the type apart.
      guard other.contains(where: { $0.head[j] != value }) else { continue }
      return (j, value)
    }
    return nil
  }

  /// The mode byte: 1 on SMC-R CDC records and 2 on SMC-D ones, when both are present.
  static func modeField(_ samples: SampleGroups, headerLength h: Int) -> Int? {
    let cdcR = samples.cdcR
    let cdcD = samples.cdcD
    guard !cdcR.isEmpty && !cdcD.isEmpty else { return nil }
    return (4..<h).first { j in cdcR.allSatisfy({ $0.head[j] == 1 }) && cdcD.allSatisfy({ $0.head[j] == 2 }) }
  }
}

/// A dump record classified with a layout.
public enum CDCRecord {
  /// SMC-R CDC records: 44-byte message + 4 bytes of leftovers.
  public static let smcRPayload = 48
  public static let smcDPayload = 32
}

/// The content of one dump record.
public enum DumpRecordContent: Sendable {
  case cdc(CDCMessage)
  /// A slice of the data ring; `length` payload bytes.
  case data(length: Int)
  /// A record that claims to be CDC (by its type byte) but is too short.
  case shortCDC(length: Int)
  /// The header length is unknown, so the content cannot be separated from the header.
  case unknownHeader(recordLength: Int)
}

extension DumpHeaderLayout {
  /// Classifies a UDP payload that starts with the dump magic. `connectionMode` is the
  /// connection's mode when already known (SMC-D CDC records of 32 bytes carry no signature).
  public func classify(_ payload: UnsafeRawBufferPointer, wireLength: Int, connectionMode: SMCMode?)
    -> DumpRecordContent
  {
    guard let h = headerLength else { return .unknownHeader(recordLength: wireLength) }
    guard payload.count >= h else {
      return .unknownHeader(recordLength: wireLength)
    }
    let body = payload.slice(h, payload.count - h)
    let bodyWire = max(0, wireLength - h)
    let rShape = body.count >= 2 && body.u8(0) == 0xFE && body.u8(1) == 0x2C
    let isCDC: Bool
    if let t = typeFieldOffset, let value = cdcTypeValue, t < payload.count {
      isCDC = payload.u8(t) == value
    } else {
      isCDC =
        (bodyWire == CDCRecord.smcRPayload && rShape)
        || (bodyWire == CDCRecord.smcDPayload
          && (connectionMode == .smcD || (connectionMode == nil && body.count > 0 && body.u8(0) == 0xFE)))
    }
    guard isCDC else { return .data(length: bodyWire) }
    if rShape || (connectionMode == .smcR && bodyWire >= CDCMessage.smcRLength),
      let message = CDCMessage.decodeSMCR(body)
    {
      return .cdc(message)
    }
    if bodyWire == CDCRecord.smcDPayload || connectionMode == .smcD,
      let message = CDCMessage.decodeSMCD(body)
    {
      return .cdc(message)
    }
    return .shortCDC(length: bodyWire)
  }
}
