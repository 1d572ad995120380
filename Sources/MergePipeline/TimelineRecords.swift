import Alignment
import Foundation
import JSON
import Rendering
import SMCWire

/// The lines of `timeline.jsonl` as records: the merge writes them, `smcpair timeline` reads
/// them (schema in docs/formats.md). Version 1: a header line, one line per paired message,
/// then one line per finding. Files without a header (smcpair before version 1) read too.
public enum TimelineRecord: Sendable, Equatable {
  case header(TimelineHeader)
  case pair(TimelinePair)
  case finding(TimelineFinding)

  /// Reads one line of `path` (1-based `line` for the error).
  public static func read(_ text: Substring, path: String, line: Int) throws(RecordError) -> TimelineRecord {
    let where_ = "\(path) line \(line)"
    let data = Data(text.utf8)
    let keys = try RecordCoding.decode(LineKeys.self, from: data, path: where_)
    if keys.finding != nil {
      return .finding(try RecordCoding.decode(TimelineFinding.self, from: data, path: where_))
    }
    if keys.format != nil {
      let header = try RecordCoding.decode(TimelineHeader.self, from: data, path: where_)
      guard header.format == TimelineHeader.formatName, header.version <= TimelineHeader.currentVersion else {
        throw RecordError(
          path: where_, field: "version",
          problem:
            "\(header.format) version \(header.version): written by a newer smcpair (this one reads up to \(TimelineHeader.currentVersion))"
        )
      }
      return .header(header)
    }
    return .pair(try RecordCoding.decode(TimelinePair.self, from: data, path: where_))
  }

  /// The keys that tell the kinds of line apart.
  private struct LineKeys: Decodable {
    var finding: String?
    var format: String?
  }
}

/// The first line: what the file is and which version of this schema it follows.
public struct TimelineHeader: Codable, Sendable, Equatable {
  public static let formatName = "smcpair-timeline"
  /// 1: header, pairs, findings (the fields of docs/formats.md). The pair lines' decode fields
  /// were added within version 1: optional keys an older reader ignores.
  public static let currentVersion = 1
  public var format = formatName
  public var version = currentVersion
  /// How many pair lines and finding lines follow.
  public var pairs: Int
  public var findings: Int

  public init(pairs: Int, findings: Int) {
    self.pairs = pairs
    self.findings = findings
  }
}

/// Which way a paired message went.
public enum TimelineDirection: String, Codable, Sendable {
  case clientToServer = "client->server"
  case serverToClient = "server->client"

  /// The side that sent it.
  public var sender: Side { self == .clientToServer ? .client : .server }

  public init(sender: Side) { self = sender == .client ? .clientToServer : .serverToClient }
}

/// One message both captures hold, its times on the reference clock, and what it is: the
/// fields `decode --json` writes for the client's copy (`EventDescription`), in the same names.
public struct TimelinePair: Codable, Sendable, Equatable {
  public var clientFrame: Int
  public var serverFrame: Int
  public var kind: PairKind
  public var direction: TimelineDirection
  /// `ip:port`, IPv6 as `[addr]:port`.
  public var src: String
  public var dst: String
  public var sendNanoseconds: Int64
  public var receiveNanoseconds: Int64
  /// receive − send.
  public var delayNanoseconds: Int64
  /// Half the width of the clock offset's bounds; absent when unbounded.
  public var delayUncertaintyNanoseconds: Int64?
  /// The client copy decoded; nil when the decoder made no event of it (or the file predates it).
  public var event: EventDescription?

  enum CodingKeys: String, CodingKey {
    case clientFrame = "client_frame"
    case serverFrame = "server_frame"
    case kind, direction, src, dst
    case sendNanoseconds = "send_ns"
    case receiveNanoseconds = "receive_ns"
    case delayNanoseconds = "delay_ns"
    case delayUncertaintyNanoseconds = "delay_uncertainty_ns"
  }

  public init(
    clientFrame: Int, serverFrame: Int, kind: PairKind, direction: TimelineDirection, src: String,
    dst: String,
    sendNanoseconds: Int64, receiveNanoseconds: Int64, delayUncertaintyNanoseconds: Int64?,
    event: EventDescription? = nil
  ) {
    self.clientFrame = clientFrame
    self.serverFrame = serverFrame
    self.kind = kind
    self.direction = direction
    self.src = src
    self.dst = dst
    self.sendNanoseconds = sendNanoseconds
    self.receiveNanoseconds = receiveNanoseconds
    self.delayNanoseconds = receiveNanoseconds &- sendNanoseconds
    self.delayUncertaintyNanoseconds = delayUncertaintyNanoseconds
    self.event = event
  }

  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    clientFrame = try container.decode(Int.self, forKey: .clientFrame)
    serverFrame = try container.decode(Int.self, forKey: .serverFrame)
    kind = try container.decode(PairKind.self, forKey: .kind)
    direction = try container.decode(TimelineDirection.self, forKey: .direction)
    src = try container.decode(String.self, forKey: .src)
    dst = try container.decode(String.self, forKey: .dst)
    sendNanoseconds = try container.decode(Int64.self, forKey: .sendNanoseconds)
    receiveNanoseconds = try container.decode(Int64.self, forKey: .receiveNanoseconds)
    delayNanoseconds = try container.decode(Int64.self, forKey: .delayNanoseconds)
    delayUncertaintyNanoseconds = try container.decodeIfPresent(
      Int64.self, forKey: .delayUncertaintyNanoseconds)
    event = try EventDescription(
      kind: kind.eventKind, reading: DecoderMembers(container: try decoder.container(keyedBy: MemberKey.self))
    )
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(clientFrame, forKey: .clientFrame)
    try container.encode(serverFrame, forKey: .serverFrame)
    try container.encode(kind, forKey: .kind)
    try container.encode(direction, forKey: .direction)
    try container.encode(src, forKey: .src)
    try container.encode(dst, forKey: .dst)
    try container.encode(sendNanoseconds, forKey: .sendNanoseconds)
    try container.encode(receiveNanoseconds, forKey: .receiveNanoseconds)
    try container.encode(delayNanoseconds, forKey: .delayNanoseconds)
    try container.encodeIfPresent(delayUncertaintyNanoseconds, forKey: .delayUncertaintyNanoseconds)
    guard let event else { return }
    var members = encoder.container(keyedBy: MemberKey.self)
    var failure: (any Error)?
    event.forEachMember { key, value in
      guard failure == nil else { return }
      do {
        let key = MemberKey(key)
        switch value {
        case .int(let number): try members.encode(number, forKey: key)
        case .string(let text): try members.encode(text, forKey: key)
        case .bool(let flag): try members.encode(flag, forKey: key)
        case .strings(let texts): try members.encode(texts, forKey: key)
        }
      } catch {
        failure = error
      }
    }
    if let failure { throw failure }
  }
}

extension PairKind {
  /// The decoder's kind of event for a pair of this kind.
  var eventKind: SMCEvent.Kind {
    switch self {
    case .tcp: .tcp
    case .clc: .clc
    case .cdc: .cdc
    case .data: .data
    }
  }
}

/// A description member's name as a coding key.
struct MemberKey: CodingKey {
  var stringValue: String
  var intValue: Int? { nil }
  init(_ name: String) { stringValue = name }
  init?(stringValue: String) { self.stringValue = stringValue }
  init?(intValue: Int) { nil }
}

/// A record's description members, read from its decoder.
struct DecoderMembers: EventMemberSource {
  let container: KeyedDecodingContainer<MemberKey>

  func int(_ key: String) throws -> Int64? {
    try container.decodeIfPresent(Int64.self, forKey: MemberKey(key))
  }
  func string(_ key: String) throws -> String? {
    try container.decodeIfPresent(String.self, forKey: MemberKey(key))
  }
  func bool(_ key: String) throws -> Bool? {
    try container.decodeIfPresent(Bool.self, forKey: MemberKey(key))
  }
  func strings(_ key: String) throws -> [String]? {
    try container.decodeIfPresent([String].self, forKey: MemberKey(key))
  }
  func lettersOrNames(_ key: String) throws -> (letters: String?, names: [String]?) {
    if let letters = try? container.decodeIfPresent(String.self, forKey: MemberKey(key)) {
      return (letters, nil)
    }
    return (nil, try strings(key))
  }
}

extension Finding.Kind: Codable {}

/// Whose capture shows something: one side's, or both (what needs both, such as a delay).
public enum SeenOn: Sendable, Equatable, Codable {
  case side(Side)
  case both

  /// From its name in the records (`client`, `server`, `both`); nil for any other text.
  public init?(_ text: String) {
    if text == "both" {
      self = .both
    } else if let side = Side(rawValue: text) {
      self = .side(side)
    } else {
      return nil
    }
  }

  /// The name written in the records: `client`, `server` or `both`.
  public var name: String {
    switch self {
    case .side(let side): side.rawValue
    case .both: "both"
    }
  }

  public init(from decoder: any Decoder) throws {
    let text = try decoder.singleValueContainer().decode(String.self)
    guard let seen = SeenOn(text) else {
      throw DecodingError.dataCorrupted(
        .init(codingPath: decoder.codingPath, debugDescription: "'\(text)' is not client, server or both"))
    }
    self = seen
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(name)
  }
}

/// A finding, after every pair line.
public struct TimelineFinding: Codable, Sendable, Equatable {
  public var finding: Finding.Kind
  public var side: SeenOn
  public var connection: String
  public var message: String
  /// When it happened (reference clock); absent when it has no one time.
  public var timeNanoseconds: Int64?

  enum CodingKeys: String, CodingKey {
    case finding, side, connection, message
    case timeNanoseconds = "time_ns"
  }

  public init(
    finding: Finding.Kind, side: SeenOn, connection: String, message: String, timeNanoseconds: Int64?
  ) {
    self.finding = finding
    self.side = side
    self.connection = connection
    self.message = message
    self.timeNanoseconds = timeNanoseconds
  }

  /// The record of `finding` (its side text is one of client, server, both).
  public init(_ finding: Finding) {
    self.init(
      finding: finding.kind, side: finding.side, connection: finding.connection,
      message: finding.message, timeNanoseconds: finding.timeNanoseconds)
  }
}

/// Writes timeline records as JSON Lines. Pair lines (a million is common) are written as
/// bytes, the same bytes `RecordCoding.encoder()` gives (keys sorted, the description's members
/// among the pairing fields; a test holds them equal), with each endpoint's quoted text made
/// once; the few other lines go through the encoder.
public struct TimelineWriter {
  public private(set) var bytes: [UInt8] = []
  private var quoted: [String: [UInt8]] = [:]
  /// The current pair's description members and how many of them are written.
  private var described: [(String, EventFieldValue)] = []
  private var next = 0
  private let encoder = RecordCoding.encoder()

  public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

  public mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

  public mutating func append(_ header: TimelineHeader) throws { try appendEncoded(header) }

  public mutating func append(_ finding: TimelineFinding) throws { try appendEncoded(finding) }

  private mutating func appendEncoded(_ value: some Encodable) throws {
    bytes += try encoder.encode(value)
    bytes.append(UInt8(ascii: "\n"))
  }

  public mutating func append(_ pair: TimelinePair) {
    described.removeAll(keepingCapacity: true)
    pair.event?.forEachMember { described.append(($0, $1)) }
    next = 0
    bytes.append(UInt8(ascii: "{"))
    key("client_frame")
    TextWriter.signedDecimal(Int64(pair.clientFrame), into: &bytes)
    key("delay_ns")
    TextWriter.signedDecimal(pair.delayNanoseconds, into: &bytes)
    if let uncertainty = pair.delayUncertaintyNanoseconds {
      key("delay_uncertainty_ns")
      TextWriter.signedDecimal(uncertainty, into: &bytes)
    }
    key("direction")
    appendQuoted(pair.direction.rawValue)
    key("dst")
    appendQuoted(pair.dst)
    key("kind")
    appendQuoted(pair.kind.rawValue)
    key("receive_ns")
    TextWriter.signedDecimal(pair.receiveNanoseconds, into: &bytes)
    key("send_ns")
    TextWriter.signedDecimal(pair.sendNanoseconds, into: &bytes)
    key("server_frame")
    TextWriter.signedDecimal(Int64(pair.serverFrame), into: &bytes)
    key("src")
    appendQuoted(pair.src)
    describedMembers(before: nil)
    bytes += "}\n".utf8
  }

  /// Writes `"name":` of a pairing field, after the description members whose names sort before
  /// it (the encoder sorts every key of the line together).
  private mutating func key(_ name: String) {
    describedMembers(before: name)
    if bytes.last != UInt8(ascii: "{") { bytes.append(UInt8(ascii: ",")) }
    bytes.append(UInt8(ascii: "\""))
    bytes += name.utf8
    bytes += #"":"#.utf8
  }

  /// Writes the description members not yet written whose names sort before `name` (all when nil).
  private mutating func describedMembers(before name: String?) {
    while next < described.count {
      let (member, value) = described[next]
      if let name, !(member < name) { return }
      if bytes.last != UInt8(ascii: "{") { bytes.append(UInt8(ascii: ",")) }
      bytes.append(UInt8(ascii: "\""))
      EventDescription.appendName(member, into: &bytes)
      bytes += #"":"#.utf8
      value.write(into: &bytes)
      next += 1
    }
  }

  private mutating func appendQuoted(_ text: String) {
    if let done = quoted[text] {
      bytes += done
      return
    }
    let done = Array(JSONValue.quoted(text).utf8)
    quoted[text] = done
    bytes += done
  }
}
