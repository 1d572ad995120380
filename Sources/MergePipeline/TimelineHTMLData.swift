import Alignment
import CaptureFiles
import Rendering
import SMCWire

/// `timeline.html` from an in-memory alignment: every pair's send and receive on the reference
/// clock, its connection, kind, frames and label, then the findings and the clock model, all
/// through `TimelineHTMLWriter` (the same writer a streaming merge feeds).
extension TimelineHTML {
  /// The page for `a` and its `findings`, in memory (small timelines, fuzzing).
  public static func render(_ a: Alignment, findings: [Finding], clientName: String, serverName: String)
    -> String
  {
    let writer = TimelineHTMLWriter()
    // A memory writer has no file to fail on.
    try? feed(a, findings: findings, clientName: clientName, serverName: serverName, into: writer)
    return writer.finishedPage()
  }

  static func feed(
    _ a: Alignment, findings: [Finding], clientName: String, serverName: String,
    into writer: TimelineHTMLWriter
  ) throws(CaptureFileError) {
    let halfWidth = (a.model.offsetUpper - a.model.offsetLower) / 2
    let uncertainty = halfWidth.isFinite ? Int64(clampingRounded: halfWidth) : nil
    // Key texts repeat on every packet of a connection: made once per connection.
    var keys: [ConnectionKey: String] = [:]
    for pair in a.pairs {
      let serverOnClient = a.clientTime(atServer: pair.server.timeNanoseconds)
      let send = pair.clientToServer ? pair.client.timeNanoseconds : serverOnClient
      let receive = pair.clientToServer ? serverOnClient : pair.client.timeNanoseconds
      let key = ConnectionKey(pair.client.source, pair.client.destination)
      let keyText = keys[key] ?? key.description
      keys[key] = keyText
      try writer.append(
        TimelineHTMLEvent(
          sendNanoseconds: send, receiveNanoseconds: receive, kind: pair.kind,
          clientToServer: pair.clientToServer,
          connection: keyText, clientFrame: pair.client.frame, serverFrame: pair.server.frame,
          delayNanoseconds: receive &- send, delayUncertaintyNanoseconds: uncertainty,
          label: "\(pair.kind.rawValue) \(pair.client.source.port)>\(pair.client.destination.port)"))
    }
    try writer.finish(
      findings: findings,
      clock: TimelineHTMLClock(
        offsetNanoseconds: a.model.offsetNanoseconds, offsetLowerNanoseconds: a.model.offsetLower,
        offsetUpperNanoseconds: a.model.offsetUpper, skewPPM: a.model.skewPPM, verdict: a.verdict.rawValue),
      clientName: clientName, serverName: serverName)
  }
}
