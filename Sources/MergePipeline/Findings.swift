import Alignment
import CaptureFiles
import SMCWire

/// Something worth a look in a two-sided capture.
public struct Finding: Sendable {
  public enum Kind: String, Sendable, CaseIterable {
    case cdcNotReceived = "cdc-not-received"
    case cdcNotSent = "cdc-not-sent"
    case seqnoGap = "seqno-gap"
    case seqnoDuplicate = "seqno-duplicate"
    case cursorRegression = "cursor-regression"
    case declined
    case fallback
    case delayOutlier = "delay-outlier"
    case tcpRetransmission = "tcp-retransmission"
    case captureDrops = "capture-drops"
  }

  public var kind: Kind
  /// `client` or `server`: whose capture shows it; `both` for what needs both (delays).
  public var side: String
  public var timeNanoseconds: Int64?
  public var connection: String
  public var message: String
}

/// Where one-way delays count as outliers, per kind and direction: above the median by more
/// than `factor` median absolute deviations, and at least `floorNanoseconds`.
public struct OutlierThreshold: Sendable {
  public static let factor: Int64 = 20
  /// Scheduling on a busy host alone delays a capture by up to about this much.
  public static let floorNanoseconds: Int64 = 1_000_000
  public var kind: PairKind
  public var clientToServer: Bool
  public var pairs: Int
  public var medianNanoseconds: Int64
  public var deviationNanoseconds: Int64
  public var thresholdNanoseconds: Int64

  public var text: String {
    "\(kind.rawValue) \(clientToServer ? "client->server" : "server->client"): \(pairs) pairs, median \(medianNanoseconds / 1000) us, MAD \(deviationNanoseconds / 1000) us, outlier above \(thresholdNanoseconds / 1000) us"
  }
}

/// Looks through both captures and the pairing for the findings of `smcpair merge`.
public enum FindingsBuilder {
  /// Groups with fewer pairs have no outlier test.
  static let outlierMinimumPairs = 20

  public static func build(_ a: Alignment, client: String, server: String) throws(CaptureFileError)
    -> [Finding]
  {
    var findings: [Finding] = []
    // CDC records only one side has: only when the captures share packets at all (else they
    // are not of the same conversation) and the record's sender is known.
    let related = a.pairCount > 0
    for packet in a.unpairedClient where related && packet.kind == .cdc {
      guard let sentHere = a.hosts.fromClient(packet.source.address) else { continue }
      findings.append(
        Finding(
          kind: sentHere ? .cdcNotReceived : .cdcNotSent, side: "client",
          timeNanoseconds: packet.timeNanoseconds,
          connection: "\(packet.source) -> \(packet.destination)",
          message: sentHere
            ? "CDC sent by the client (frame \(packet.frame)) is not in the server's capture: never received, or dropped by the server's kernel"
            : "CDC received by the client (frame \(packet.frame)) is not in the server's capture as sent"))
    }
    for packet in a.unpairedServer where related && packet.kind == .cdc {
      guard let fromClient = a.hosts.fromClient(packet.source.address) else { continue }
      let sentHere = !fromClient
      findings.append(
        Finding(
          kind: sentHere ? .cdcNotReceived : .cdcNotSent, side: "server",
          timeNanoseconds: packet.timeNanoseconds,
          connection: "\(packet.source) -> \(packet.destination)",
          message: sentHere
            ? "CDC sent by the server (frame \(packet.frame)) is not in the client's capture: never received"
            : "CDC received by the server (frame \(packet.frame)) is not in the client's capture as sent"))
    }
    // Per capture: seqno gaps and duplicates, cursor regressions, retransmissions, outcomes, drops.
    for (side, path) in [("client", client), ("server", server)] {
      let decoder = try CaptureDecoder(path: path)
      var lastSeqno: [String: UInt16] = [:]
      var lastCursor: [String: UInt64] = [:]
      var segments: [String: Int] = [:]
      try decoder.run { event in
        let flow = "\(event.source) -> \(event.destination)"
        if let cdc = event.cdc {
          if let seq = cdc.sequenceNumber, seq != 0 {
            if let previous = lastSeqno[flow] {
              if seq == previous {
                findings.append(
                  Finding(
                    kind: .seqnoDuplicate, side: side, timeNanoseconds: event.timeNanoseconds,
                    connection: flow,
                    message:
                      "CDC seqno \(seq) appears twice (frame \(event.frame)); a re-sent failed post shows this way on the sender"
                  ))
              } else if seq != previous &+ 1 && Int16(bitPattern: seq &- previous) > 0 {
                findings.append(
                  Finding(
                    kind: .seqnoGap, side: side, timeNanoseconds: event.timeNanoseconds, connection: flow,
                    message:
                      "CDC seqno jumps from \(previous) to \(seq) (frame \(event.frame)): \(seq &- previous &- 1) missing"
                  ))
              }
            }
            lastSeqno[flow] = seq
          }
          let cursor = UInt64(cdc.producer.wrap) << 32 | UInt64(cdc.producer.count)
          if let previous = lastCursor[flow], cursor < previous, cdc.producer.wrap != 0 || cursor != 0 {
            findings.append(
              Finding(
                kind: .cursorRegression, side: side, timeNanoseconds: event.timeNanoseconds, connection: flow,
                message:
                  "producer cursor steps back from \(previous >> 32):\(previous & 0xFFFF_FFFF) to \(cdc.producer.wrap):\(cdc.producer.count) (frame \(event.frame)); a link failover re-sends this way"
              ))
          }
          lastCursor[flow] = max(cursor, lastCursor[flow] ?? 0)
        }
        if event.kind == .tcp, let tcp = event.tcp,
          event.tcpPayloadLength > 0 || tcp.flags.contains(.syn) || tcp.flags.contains(.fin)
        {
          let key = "\(flow) \(tcp.sequence) \(event.tcpPayloadLength) \(tcp.flags.rawValue & 0x07)"
          segments[key, default: 0] += 1
          if segments[key] == 2 {
            findings.append(
              Finding(
                kind: .tcpRetransmission, side: side, timeNanoseconds: event.timeNanoseconds,
                connection: flow,
                message:
                  "TCP segment seq \(tcp.sequence) (\(event.tcpPayloadLength) bytes) sent again (frame \(event.frame))"
              ))
          }
        }
      }
      let summary = decoder.summary
      if side == "client" {
        for connection in summary.connections {
          let name =
            connection.client.flatMap { c in connection.server.map { "\(c) -> \($0)" } }
            ?? connection.key.description
          if case .fallback(let code, let inferred, let detail) = connection.outcome {
            findings.append(
              Finding(
                kind: connection.declineSeen ? .declined : .fallback, side: side,
                timeNanoseconds: connection.firstNanoseconds, connection: name,
                message:
                  "fell back to TCP: \(detail)\(code.map { " (\(DeclineReason.hexCode($0)))" } ?? "")\(inferred ? ", inferred" : "")"
              ))
          }
        }
      }
      for interface in summary.interfaces {
        let dropped = (interface.statistics?.interfaceDropped ?? 0) + (interface.statistics?.osDropped ?? 0)
        if dropped > 0 {
          findings.append(
            Finding(
              kind: .captureDrops, side: side, timeNanoseconds: interface.statistics?.timestampNanoseconds,
              connection: interface.name ?? "?",
              message:
                "\(dropped) packets were dropped while capturing \(interface.name ?? "an interface"): the timeline has gaps there"
            ))
        }
      }
    }
    for (threshold, outliers) in delayOutliers(a) {
      for (pair, delay) in outliers {
        findings.append(
          Finding(
            kind: .delayOutlier, side: "both", timeNanoseconds: pair.client.timeNanoseconds,
            connection: "\(pair.client.source) -> \(pair.client.destination)",
            message:
              "one-way delay \(delay / 1000) us against a median of \(threshold.medianNanoseconds / 1000) us for \(pair.kind.rawValue) \(pair.clientToServer ? "client->server" : "server->client") (threshold \(threshold.thresholdNanoseconds / 1000) us; client frame \(pair.client.frame))"
          ))
      }
    }
    return findings.sorted { ($0.timeNanoseconds ?? 0) < ($1.timeNanoseconds ?? 0) }
  }

  /// Per kind and direction with enough pairs: the threshold and the pairs above it.
  public static func outlierThresholds(_ a: Alignment) -> [OutlierThreshold] {
    delayOutliers(a).map(\.threshold)
  }

  static func delayOutliers(_ a: Alignment) -> [(
    threshold: OutlierThreshold, outliers: [(PacketPair, Int64)]
  )] {
    var groups: [Int: [(PacketPair, Int64)]] = [:]
    for pair in a.pairs {
      let delay = a.oneWayDelay(
        clientToServer: pair.clientToServer, client: pair.client.timeNanoseconds,
        server: pair.server.timeNanoseconds)
      groups[PairKind.allCases.firstIndex(of: pair.kind)! * 2 + (pair.clientToServer ? 0 : 1), default: []]
        .append((pair, delay))
    }
    return groups.sorted { $0.key < $1.key }.compactMap { key, delays in
      guard delays.count >= outlierMinimumPairs else { return nil }
      let sorted = delays.map(\.1).sorted()
      let median = sorted[sorted.count / 2]
      // In Double: times from a damaged file may be anywhere in Int64's range.
      let deviations = sorted.map { abs(Double($0) - Double(median)) }.sorted()
      let mad = deviations[deviations.count / 2]
      let margin = max(Double(OutlierThreshold.factor) * mad, Double(OutlierThreshold.floorNanoseconds))
      let limit = Double(median) + margin
      let threshold = OutlierThreshold(
        kind: PairKind.allCases[key / 2], clientToServer: key % 2 == 0, pairs: delays.count,
        medianNanoseconds: median, deviationNanoseconds: Int64(clampingRounded: mad),
        thresholdNanoseconds: Int64(clampingRounded: limit))
      return (threshold, delays.filter { Double($0.1) > limit })
    }
  }
}
