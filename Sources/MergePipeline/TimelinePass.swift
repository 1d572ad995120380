import Alignment
import CaptureFiles
import Foundation
import Rendering
import SMCWire
import Support

/// What the timeline outputs need of one pair, found by its client copy's frame.
struct ClientFramePair {
  var serverFrame: Int
  var kind: PairKind
  var clientToServer: Bool
  var source: Endpoint
  var destination: Endpoint
  var clientTime: Int64
  var serverTime: Int64
}

/// The pairs of a merge, looked up by the client copy's frame number.
protocol ClientFramePairs {
  /// Client frames are 1 ... `clientPackets`.
  var clientPackets: Int { get }
  var count: Int { get }
  func pair(clientFrame: Int) throws(CaptureFileError) -> ClientFramePair?
}

/// The pairs of an alignment made in memory.
struct ListedClientPairs: ClientFramePairs {
  let alignment: Alignment
  /// Pair index per client frame (-1: none).
  let pairOfFrame: [Int32]

  init(_ a: Alignment) {
    alignment = a
    var index = [Int32](repeating: -1, count: a.clientPackets + 1)
    for (number, pair) in a.pairs.enumerated() where pair.client.frame < index.count {
      index[pair.client.frame] = Int32(number)
    }
    pairOfFrame = index
  }

  var clientPackets: Int { alignment.clientPackets }
  var count: Int { alignment.pairs.count }

  func pair(clientFrame: Int) -> ClientFramePair? {
    guard clientFrame >= 0, clientFrame < pairOfFrame.count, pairOfFrame[clientFrame] >= 0 else { return nil }
    let pair = alignment.pairs[Int(pairOfFrame[clientFrame])]
    return ClientFramePair(
      serverFrame: pair.server.frame, kind: pair.kind, clientToServer: pair.clientToServer,
      source: pair.client.source, destination: pair.client.destination,
      clientTime: pair.client.timeNanoseconds,
      serverTime: pair.server.timeNanoseconds)
  }
}

/// The pairs a windowed walk logged: the client's note of a frame gives its pair number, the
/// pair file that pair's times, frames and flow. Both files are mapped, nothing is held.
struct LoggedClientPairs: ClientFramePairs {
  let notes: PairLogReader
  let times: PairTimesReader
  let flows: [EndpointFlow]
  /// Per flow: sent by the client? (nil: undecided, left out as in memory.)
  let fromClient: [Bool?]
  let clientPackets: Int
  let count: Int

  init(_ a: Alignment, logs: PairLogs, pairs: PairTimes) throws(CaptureFileError) {
    notes = try PairLogReader(path: logs.paths.client)
    times = try PairTimesReader(pairs)
    flows = pairs.flows
    fromClient = pairs.flows.map { a.hosts.fromClient($0.source.address) }
    clientPackets = notes.count
    count = a.pairCount
  }

  func pair(clientFrame: Int) throws(CaptureFileError) -> ClientFramePair? {
    guard let note = notes.note(frame: clientFrame), note.pairNumber > 0 else { return nil }
    let pair = try times.pair(at: Int(note.pairNumber) - 1)
    guard let clientToServer = fromClient[pair.flow] else { return nil }
    let flow = flows[pair.flow]
    return ClientFramePair(
      serverFrame: pair.serverFrame, kind: pair.kind, clientToServer: clientToServer, source: flow.source,
      destination: flow.destination, clientTime: pair.clientTime, serverTime: pair.serverTime)
  }
}

/// Writes timeline.jsonl and timeline.html in one pass over the client capture: each event is
/// described (`EventDescriber`, in time order), and the event of a paired frame becomes that
/// pair's line and arrow. Memory: the describer's per-connection state, one frame's events,
/// a bit per client frame, the writers' buffers — not the pairs.
///
/// A pair whose frame gives no event (the decoder could not read it again) is written after
/// the others, without decoded fields.
struct TimelinePass {
  let alignment: Alignment
  let findings: [Finding]
  let names: PerSide<String>

  func write(
    client: String, pairs: some ClientFramePairs, jsonl: String?, html: String?
  ) throws {
    var out = try jsonl.map { path throws(CaptureFileError) in try TimelineFile(path: path) }
    let page = try html.map { path throws(CaptureFileError) in try TimelineHTMLWriter(path: path) }
    try out?.writer.append(TimelineHeader(pairs: pairs.count, findings: findings.count))
    let a = alignment
    let halfWidth = (a.model.offsetUpper - a.model.offsetLower) / 2
    let uncertainty = halfWidth.isFinite ? Int64(clampingRounded: halfWidth) : nil
    var texts = EndpointTexts()
    var written = FrameBits(count: pairs.clientPackets + 1)

    func emit(frame: Int, _ pair: ClientFramePair, _ event: EventDescription?) throws {
      written.insert(frame)
      let serverOnClient = a.clientTime(atServer: pair.serverTime)
      let send = pair.clientToServer ? pair.clientTime : serverOnClient
      let receive = pair.clientToServer ? serverOnClient : pair.clientTime
      if out != nil {
        out?.writer.append(
          TimelinePair(
            clientFrame: frame, serverFrame: pair.serverFrame, kind: pair.kind,
            direction: pair.clientToServer ? .clientToServer : .serverToClient, src: texts.text(pair.source),
            dst: texts.text(pair.destination), sendNanoseconds: send, receiveNanoseconds: receive,
            delayUncertaintyNanoseconds: uncertainty, event: event))
        try out?.flushIfLarge()
      }
      try page?.append(
        TimelineHTMLEvent(
          sendNanoseconds: send, receiveNanoseconds: receive, kind: pair.kind,
          clientToServer: pair.clientToServer,
          connection: texts.connection(pair.source, pair.destination), clientFrame: frame,
          serverFrame: pair.serverFrame, delayNanoseconds: receive &- send,
          delayUncertaintyNanoseconds: uncertainty,
          label: event?.label ?? "\(pair.kind.rawValue) \(pair.source.port)>\(pair.destination.port)"))
    }

    // The events of one frame come together; the frame's pair takes its event of the pair's
    // kind, else its first (a frame can carry a TCP segment and the CLC message it completes).
    var frame = -1
    var events: [EventDescription] = []
    func settle() throws {
      guard frame >= 0, !events.isEmpty, !written.contains(frame),
        let pair = try pairs.pair(clientFrame: frame)
      else { return }
      let event = events.first { $0.kind == pair.kind.eventKind } ?? events[0]
      try emit(frame: frame, pair, event)
    }
    // A client capture that cannot be decoded again leaves its pairs undescribed (below).
    if let decoder = try? CaptureDecoder(path: client) {
      var describer = EventDescriber()
      var failure: (any Error)?
      try? decoder.run { event in
        let description = describer.describe(event)
        guard failure == nil else { return }
        if event.frame != frame {
          do { try settle() } catch { failure = error }
          frame = event.frame
          events.removeAll(keepingCapacity: true)
        }
        events.append(description)
      }
      if let failure { throw failure }
      try settle()
    }
    if written.count < pairs.count {
      for frame in 1...max(1, pairs.clientPackets) where !written.contains(frame) {
        guard let pair = try pairs.pair(clientFrame: frame) else { continue }
        try emit(frame: frame, pair, nil)
      }
    }
    if var file = out {
      for finding in findings {
        try file.writer.append(TimelineFinding(finding))
        try file.flushIfLarge()
      }
      try file.commit()
    }
    try page?.finish(
      findings: findings,
      clock: TimelineHTMLClock(
        offsetNanoseconds: a.model.offsetNanoseconds, offsetLowerNanoseconds: a.model.offsetLower,
        offsetUpperNanoseconds: a.model.offsetUpper, skewPPM: a.model.skewPPM, verdict: a.verdict.rawValue),
      clientName: names.client, serverName: names.server)
  }
}

/// timeline.jsonl being written: under a temporary name, in chunks of about 1 MiB.
struct TimelineFile {
  let staged: StagedFile
  let file: FileHandle
  var writer = TimelineWriter(capacity: 1 << 20 + 4096)

  init(path: String) throws(CaptureFileError) {
    staged = StagedFile(finalPath: path)
    guard FileManager.default.createFile(atPath: staged.temporaryPath, contents: nil),
      let file = FileHandle(forWritingAtPath: staged.temporaryPath)
    else {
      throw CaptureFileError(.io, "cannot create (\(staged.temporaryPath)): \(Errno.current)", path: path)
    }
    self.file = file
  }

  mutating func flushIfLarge(_ force: Bool = false) throws {
    guard force || writer.bytes.count >= 1 << 20 else { return }
    try file.write(contentsOf: writer.bytes)
    writer.removeAll()
  }

  mutating func commit() throws {
    try flushIfLarge(true)
    try file.close()
    try staged.commit()
  }
}

/// Endpoint and connection texts, made once each: they repeat on every packet.
struct EndpointTexts {
  private var endpoints: [Endpoint: String] = [:]
  private var connections: [ConnectionKey: String] = [:]

  mutating func text(_ endpoint: Endpoint) -> String {
    if let text = endpoints[endpoint] { return text }
    let text = endpoint.description
    endpoints[endpoint] = text
    return text
  }

  mutating func connection(_ source: Endpoint, _ destination: Endpoint) -> String {
    let key = ConnectionKey(source, destination)
    if let text = connections[key] { return text }
    let text = key.description
    connections[key] = text
    return text
  }
}

/// One bit per frame number.
struct FrameBits {
  private var words: [UInt64]
  private(set) var count = 0

  init(count frames: Int) { words = [UInt64](repeating: 0, count: (frames + 63) / 64) }

  func contains(_ frame: Int) -> Bool {
    frame >= 0 && frame / 64 < words.count && words[frame / 64] & (1 << UInt64(frame % 64)) != 0
  }

  mutating func insert(_ frame: Int) {
    guard frame >= 0, frame / 64 < words.count, !contains(frame) else { return }
    words[frame / 64] |= 1 << UInt64(frame % 64)
    count += 1
  }
}
