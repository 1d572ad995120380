import Alignment
import Foundation
import JSON
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
  /// 1: header, pairs, findings (the fields of docs/formats.md).
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

/// One message both captures hold, its times on the reference clock.
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
    sendNanoseconds: Int64, receiveNanoseconds: Int64, delayUncertaintyNanoseconds: Int64?
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
/// bytes, the same bytes `RecordCoding.encoder()` gives (keys sorted; a test holds them
/// equal), with each endpoint's quoted text made once; the few other lines go through the
/// encoder.
public struct TimelineWriter {
  public private(set) var bytes: [UInt8] = []
  private var quoted: [String: [UInt8]] = [:]
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
    bytes += #"{"client_frame":"#.utf8
    TextWriter.signedDecimal(Int64(pair.clientFrame), into: &bytes)
    bytes += #","delay_ns":"#.utf8
    TextWriter.signedDecimal(pair.delayNanoseconds, into: &bytes)
    if let uncertainty = pair.delayUncertaintyNanoseconds {
      bytes += #","delay_uncertainty_ns":"#.utf8
      TextWriter.signedDecimal(uncertainty, into: &bytes)
    }
    bytes += #","direction":"#.utf8
    appendQuoted(pair.direction.rawValue)
    bytes += #","dst":"#.utf8
    appendQuoted(pair.dst)
    bytes += #","kind":"#.utf8
    appendQuoted(pair.kind.rawValue)
    bytes += #","receive_ns":"#.utf8
    TextWriter.signedDecimal(pair.receiveNanoseconds, into: &bytes)
    bytes += #","send_ns":"#.utf8
    TextWriter.signedDecimal(pair.sendNanoseconds, into: &bytes)
    bytes += #","server_frame":"#.utf8
    TextWriter.signedDecimal(Int64(pair.serverFrame), into: &bytes)
    bytes += #","src":"#.utf8
    appendQuoted(pair.src)
    bytes += "}\n".utf8
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
