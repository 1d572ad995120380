import Alignment
import Foundation
import Rendering
import SMCWire

/// The data `timeline.html` shows: every pair's send and receive on the reference clock, its
/// connection, kind and frames, the findings as marks, and the clock model.
extension TimelineHTML {
  /// `timeline.html` for `a` and its `findings`.
  public static func render(_ a: Alignment, findings: [Finding], clientName: String, serverName: String)
    -> String
  {
    let start =
      a.pairs.map { min($0.client.timeNanoseconds, a.clientTime(atServer: $0.server.timeNanoseconds)) }.min()
      ?? 0
    var connections: [String] = []
    var connectionIndex: [String: Int] = [:]
    var kind: [String] = []
    var direction: [String] = []
    var send: [String] = []
    var receive: [String] = []
    var conn: [String] = []
    var frames: [String] = []
    for pair in a.pairs {
      let serverOnClient = a.clientTime(atServer: pair.server.timeNanoseconds)
      let s = pair.clientToServer ? pair.client.timeNanoseconds : serverOnClient
      let r = pair.clientToServer ? serverOnClient : pair.client.timeNanoseconds
      let key = ConnectionKey(pair.client.source, pair.client.destination).description
      let index =
        connectionIndex[key]
        ?? {
          connections.append(key)
          connectionIndex[key] = connections.count - 1
          return connections.count - 1
        }()
      kind.append(String(pair.kind.index))
      direction.append(pair.clientToServer ? "1" : "0")
      send.append(String(s &- start))
      receive.append(String(r &- start))
      conn.append(String(index))
      frames.append("\(pair.client.frame),\(pair.server.frame)")
    }
    let marks = findings.compactMap { finding -> String? in
      guard let time = finding.timeNanoseconds else { return nil }
      return
        "[\(time &- start),\(jsonString(finding.side.name)),\(jsonString(finding.kind.rawValue)),\(jsonString(finding.message))]"
    }
    let data = """
      {"start":\(start),"client":\(jsonString(clientName)),"server":\(jsonString(serverName)),
      "kinds":["tcp","clc","cdc","data"],"connections":[\(connections.map(jsonString).joined(separator: ","))],
      "kind":[\(kind.joined(separator: ","))],"dir":[\(direction.joined(separator: ","))],
      "send":[\(send.joined(separator: ","))],"recv":[\(receive.joined(separator: ","))],
      "conn":[\(conn.joined(separator: ","))],"frames":[\(frames.map { "[\($0)]" }.joined(separator: ","))],
      "marks":[\(marks.joined(separator: ","))],
      "model":{"offset_ns":\(finite(a.model.offsetNanoseconds)),"lower_ns":\(finite(a.model.offsetLower)),"upper_ns":\(finite(a.model.offsetUpper)),"skew_ppm":\(finite(a.model.skewPPM)),"verdict":\(jsonString(a.verdict.rawValue))}}
      """
    return page(embedding: data)
  }

  static func finite(_ v: Double) -> String { v.isFinite ? String(format: "%.1f", v) : "null" }
}
