import Foundation
import SMCSynthesis
import SMCWire

/// What an emulated SMC connection does after the handshake (`--scenario`).
public enum PeerScenario: String, CaseIterable, Codable, Sendable {
  /// Request/response, like sockperf ping-pong.
  case pingpong
  /// One direction, like iperf3; the server answers with consumer-cursor updates.
  case bulk
  /// Both directions at once.
  case both
  /// SMC-D: 32-byte CDC messages, little-endian cursors, no seqno.
  case smcd
  /// The server declines (`--reason`); the data flows over the TCP connection.
  case decline
  /// Some records the sender wrote are never written by the receiver.
  case cdcLoss = "cdc-loss"
  /// A failed post re-sent: the sender shows one seqno twice.
  case dupSeqno = "dup-seqno"
  /// More than 65,535 CDC messages: the 16-bit seqno wraps.
  case wrap
  /// RDMA write with immediate (ANCK): synthesised CDC records with seqno 0.
  case rwwi
  /// A link failover: the producer cursor steps back while the seqno keeps rising.
  case failover

  public var defaultMessages: Int { self == .wrap ? 70_000 : 10 }
  public var defaultSize: Int { self == .wrap ? 64 : 1000 }
}

/// The parameters both peers use; the client sends them to the server first.
public struct PeerOptions: Codable, Sendable {
  public var scenario: PeerScenario = .pingpong
  public var messages = 10
  public var size = 1000
  public var seed: UInt64 = 1
  /// Decline reason name (decline scenario), e.g. NOSMCRDEV.
  public var reason = "NOSMCRDEV"
  public var clcVersion: UInt8 = 1
  /// RMBE/DMBE size code: size = 1 << (code + 14).
  public var bufferSizeCode: UInt8 = 1
  /// Largest data record; larger writes are split (and always at the ring's end).
  public var maxRecord = 8192

  public init() {}

  var mode: SMCMode { scenario == .smcd ? .smcD : .smcR }
  var ringSize: Int { (1 << (Int(bufferSizeCode) + 14)) - (mode == .smcD ? 32 : 0) }

  public var declineCode: UInt32? {
    DeclineReason.names.first { $0.value == reason.uppercased() }?.key
      ?? (reason.hasPrefix("0x") ? UInt32(reason.dropFirst(2), radix: 16) : nil)
  }
}

/// What one emulator run did, printed at the end.
public struct PeerReport: Sendable, CustomStringConvertible {
  public var role: String
  public var scenario: PeerScenario
  public var local = ""
  public var peer = ""
  public var outcome = ""
  public var messagesSent = 0
  public var messagesReceived = 0
  public var cdcRecords = 0
  public var dataRecords = 0
  public var dumpDevice: String?

  public var description: String {
    "\(role) \(local) -> \(peer) scenario \(scenario.rawValue): \(outcome); sent \(messagesSent), received \(messagesReceived) messages; wrote \(cdcRecords) CDC and \(dataRecords) data records\(dumpDevice.map { " on \($0)" } ?? "")"
  }
}

/// Emulates one side of an SMC connection between two lab hosts. See docs/lab.md.
///
/// The SMC connection is a real kernel TCP connection (port P) that carries the CLC
/// handshake, exactly as SMC uses it. What RDMA or ISM would move (data writes and CDC
/// messages) travels over a second TCP connection (port P+1, the emulated fabric), which
/// also carries the scenario first. Dump records are written as the kernel writes them:
/// the sender's at send time, the receiver's on arrival.
public final class PeerEmulator {
  let dump: DumpDevice?
  let timeout: Double
  var options: PeerOptions
  var report: PeerReport
  var random: SeededRandom

  // Connection state, per direction.
  var local = Endpoint(IPAddress(ipv4: 0), 0)
  var peer = Endpoint(IPAddress(ipv4: 0), 0)
  var peerToken: UInt32 = 0
  var seqno: UInt16 = 0
  var producer = CDCCursor(wrap: 0, count: 0)
  var consumer = CDCCursor(wrap: 0, count: 0)

  init(dumpDevice: String?, dumpHeaderLength: Int, timeout: Double, role: String) throws(LabError) {
    var format = DumpHeaderFormat.declarationOrder
    format.length = dumpHeaderLength
    dump = try dumpDevice.map { name throws(LabError) in try DumpDevice(name: name, format: format) }
    self.timeout = timeout
    options = PeerOptions()
    report = PeerReport(role: role, scenario: .pingpong, dumpDevice: dumpDevice)
    random = SeededRandom(seed: 1)
  }

  // MARK: - entry points

  /// Serves one emulated connection on `port` (fabric on `port + 1`).
  public static func serve(
    listen address: String, port: UInt16, dumpDevice: String?, dumpHeaderLength: Int = 16,
    timeout: Double = 30
  ) throws(LabError) -> PeerReport {
    let emulator = try PeerEmulator(
      dumpDevice: dumpDevice, dumpHeaderLength: dumpHeaderLength, timeout: timeout, role: "server")
    let smcListener = try PeerSocket.listen(host: address, port: port, timeout: timeout)
    let fabricListener = try PeerSocket.listen(host: address, port: port &+ 1, timeout: timeout)
    let fabric = try fabricListener.accept()
    guard let hello = try fabric.readMessage(), hello.kind == .hello,
      let options = try? JSONDecoder().decode(PeerOptions.self, from: Data(hello.payload))
    else { throw LabError("the client did not send its scenario on the fabric connection") }
    emulator.options = options
    emulator.report.scenario = options.scenario
    emulator.random = SeededRandom(seed: options.seed &+ 0x5E4F)
    try fabric.writeMessage(.helloAck, [])
    let connection = try smcListener.accept()
    try emulator.runServer(connection, fabric)
    return emulator.report
  }

  /// Connects to a server emulator and runs `options`.
  public static func connect(
    to address: String, port: UInt16, localPort: UInt16?, options: PeerOptions, dumpDevice: String?,
    dumpHeaderLength: Int = 16, timeout: Double = 30
  ) throws(LabError) -> PeerReport {
    let emulator = try PeerEmulator(
      dumpDevice: dumpDevice, dumpHeaderLength: dumpHeaderLength, timeout: timeout, role: "client")
    emulator.options = options
    emulator.report.scenario = options.scenario
    emulator.random = SeededRandom(seed: options.seed)
    let fabric = try PeerSocket.connect(host: address, port: port &+ 1, localPort: nil, timeout: timeout)
    let hello: [UInt8]
    do {
      hello = Array(try JSONEncoder().encode(options))
    } catch {
      throw LabError("cannot encode the scenario: \(error)")
    }
    try fabric.writeMessage(.hello, hello)
    guard let ack = try fabric.readMessage(), ack.kind == .helloAck else {
      throw LabError("the server emulator did not acknowledge the scenario")
    }
    let connection = try PeerSocket.connect(host: address, port: port, localPort: localPort, timeout: timeout)
    try emulator.runClient(connection, fabric)
    return emulator.report
  }

  // MARK: - handshake

  func identify(_ connection: PeerSocket) {
    let (l, p) = connection.endpoints()
    local = Endpoint(IPAddress(l.0) ?? IPAddress(ipv4: 0), l.1)
    peer = Endpoint(IPAddress(p.0) ?? IPAddress(ipv4: 0), p.1)
    report.local = local.description
    report.peer = peer.description
  }

  /// The MAC of the interface that holds the SMC connection's local address (data0 in a
  /// two-network lab, as a RoCE device's; eth0 in a single-network one).
  var localMAC: UInt64 {
    let interface = PeerEmulator.interface(holding: local.address.description) ?? "eth0"
    let text = (try? String(contentsOfFile: "/sys/class/net/\(interface)/address", encoding: .utf8)) ?? ""
    return UInt64(
      text.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: ":", with: ""), radix: 16)
      ?? (random.next() & 0xFEFF_FFFF_FFFF)
  }

  /// The name of the interface with IPv4 address `address`, if any.
  static func interface(holding address: String) -> String? {
    var list: UnsafeMutablePointer<ifaddrs>?
    guard getifaddrs(&list) == 0, let first = list else { return nil }
    defer { freeifaddrs(list) }
    for entry in sequence(first: first, next: { $0.pointee.ifa_next }) {
      guard let socketAddress = entry.pointee.ifa_addr,
        socketAddress.pointee.sa_family == sa_family_t(AF_INET)
      else { continue }
      var text = [CChar](repeating: 0, count: 32)
      socketAddress.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
        var sin = $0.pointee.sin_addr
        _ = inet_ntop(AF_INET, &sin, &text, 32)
      }
      if String(cString: text) == address { return String(cString: entry.pointee.ifa_name) }
    }
    return nil
  }

  /// Link-local GID built from a MAC (EUI-64), as RoCE devices derive it.
  func gid(_ mac: UInt64) -> (UInt64, UInt64) {
    let flipped = mac ^ 0x0200_0000_0000
    let low = (flipped >> 24) << 40 | 0xFF_FE00_0000 | (flipped & 0xFF_FFFF)
    return (0xFE80_0000_0000_0000, low)
  }

  func peerID(_ mac: UInt64) -> UInt64 { (random.next() & 0xFFFF) << 48 | mac }

  func readCLC(_ connection: PeerSocket) throws(LabError) -> (CLCMessage, [UInt8]) {
    guard let head = try connection.readExact(8) else {
      throw LabError("the peer closed the SMC connection before sending a CLC message")
    }
    let length = Int(head[5]) << 8 | Int(head[6])
    guard length >= 8, length <= 4096 else {
      throw LabError("the peer sent a CLC header with length \(length)")
    }
    let rest = try connection.readExact(length - 8) ?? []
    let bytes = head + rest
    guard let message = bytes.withUnsafeBytes({ CLCMessage.decode($0)?.message }) else {
      throw LabError("the peer sent something that is not a CLC message")
    }
    return (message, bytes)
  }

  func runServer(_ connection: PeerSocket, _ fabric: PeerSocket) throws(LabError) {
    identify(connection)
    let (proposal, _) = try readCLC(connection)
    guard proposal.kind == .proposal else {
      throw LabError("expected a CLC Proposal, got \(proposal.kind.name)")
    }
    let mac = localMAC
    if options.scenario == .decline {
      guard let code = options.declineCode else {
        throw LabError("unknown decline reason '\(options.reason)'")
      }
      try connection.writeAll(
        CLCBuilder.decline(version: options.clcVersion, peerID: peerID(mac), diagnosis: code))
      report.outcome = "declined (\(DeclineReason.name(code))), data over TCP"
      try fallbackServer(connection)
      return
    }
    let myToken = UInt32(truncatingIfNeeded: random.next() % 4096) + 1
    let accept = acceptOrConfirm(.accept, token: myToken, mac: mac)
    try connection.writeAll(accept)
    let (confirm, _) = try readCLC(connection)
    guard confirm.kind == .confirm else { throw LabError("expected a CLC Confirm, got \(confirm.kind.name)") }
    peerToken = confirm.alertToken ?? UInt32(truncatingIfNeeded: confirm.dmbToken ?? 0)
    report.outcome = "SMC-\(options.mode.letter) v\(options.clcVersion)"
    try dataPhase(isClient: false, fabric: fabric)
    connection.closeGracefully()
  }

  /// The server's Accept or the client's Confirm: the same layout, with this side's
  /// randomly drawn identifiers (drawn in the same order for a given seed).
  func acceptOrConfirm(_ kind: CLCMessage.Kind, token: UInt32, mac: UInt64) -> [UInt8] {
    if options.mode == .smcD {
      return CLCBuilder.acceptConfirmD(
        kind, version: options.clcVersion, firstContact: true, ismGID: random.next(), dmbToken: UInt64(token),
        dmbeIndex: 0, dmbeSizeCode: options.bufferSizeCode, linkID: UInt32(truncatingIfNeeded: random.next()))
    }
    return CLCBuilder.acceptConfirmR(
      kind, version: options.clcVersion, firstContact: true, peerID: peerID(mac), gid: gid(mac), mac: mac,
      qpNumber: UInt32(truncatingIfNeeded: random.next()) & 0xFF_FFFF,
      rmbRkey: UInt32(truncatingIfNeeded: random.next()), rmbeIndex: 1, alertToken: token,
      rmbeSizeCode: options.bufferSizeCode, qpMTU: 3, rmbAddress: random.next() & 0xFFFF_FFFF_F000,
      initialPSN: UInt32(truncatingIfNeeded: random.next()) & 0xFF_FFFF)
  }

  func runClient(_ connection: PeerSocket, _ fabric: PeerSocket) throws(LabError) {
    identify(connection)
    let mac = localMAC
    let isD = options.mode == .smcD
    let proposal = CLCBuilder.proposal(
      version: options.clcVersion, pathV1: isD ? .smcD : .smcR,
      pathV2: options.clcVersion >= 2 ? (isD ? .smcD : .smcR) : .none, peerID: peerID(mac), gid: gid(mac),
      mac: mac,
      ismGID: isD ? random.next() : nil, subnet: local.address.ipv4 & 0xFFFF_FF00, prefixLength: 24)
    try connection.writeAll(proposal)
    let (answer, _) = try readCLC(connection)
    switch answer.kind {
    case .decline:
      report.outcome = "declined (\(answer.declineName ?? "?")), data over TCP"
      try fallbackClient(connection)
      return
    case .accept:
      break
    default:
      throw LabError("expected a CLC Accept or Decline, got \(answer.kind.name)")
    }
    peerToken = answer.alertToken ?? UInt32(truncatingIfNeeded: answer.dmbToken ?? 0)
    let myToken = UInt32(truncatingIfNeeded: random.next() % 4096) + 1
    let confirm = acceptOrConfirm(.confirm, token: myToken, mac: mac)
    try connection.writeAll(confirm)
    report.outcome = "SMC-\(options.mode.letter) v\(options.clcVersion)"
    try dataPhase(isClient: true, fabric: fabric)
    connection.closeGracefully()
  }

  // MARK: - fallback (after a Decline): the data flows over the TCP connection

  func fallbackClient(_ connection: PeerSocket) throws(LabError) {
    for index in 0..<options.messages {
      try connection.writeAll(payload(index))
      report.messagesSent += 1
      guard try connection.readExact(options.size) != nil else { throw LabError("the server closed early") }
      report.messagesReceived += 1
    }
    connection.closeGracefully()
  }

  func fallbackServer(_ connection: PeerSocket) throws(LabError) {
    while let request = try connection.readExact(options.size) {
      report.messagesReceived += 1
      try connection.writeAll(request)
      report.messagesSent += 1
    }
    connection.closeGracefully()
  }

  func payload(_ index: Int) -> [UInt8] {
    (0..<options.size).map { UInt8(truncatingIfNeeded: $0 &+ index &* 7) }
  }

  // MARK: - data phase

  func dataPhase(isClient: Bool, fabric: PeerSocket) throws(LabError) {
    let n = options.messages
    switch options.scenario {
    case .pingpong, .smcd, .rwwi, .failover, .dupSeqno:
      for index in 0..<n {
        if isClient {
          try send(data: payload(index), index: index, fabric: fabric)
          try receive(fabric)
        } else {
          try receive(fabric)
          try send(data: payload(index), index: index, fabric: fabric)
        }
      }
    case .bulk, .cdcLoss, .wrap:
      let updateEvery = options.scenario == .wrap ? 64 : 1
      if isClient {
        for index in 0..<n {
          try send(data: payload(index), index: index, fabric: fabric)
          while try fabric.hasData() { try receive(fabric) }
        }
      } else {
        for index in 0..<n {
          try receive(fabric)
          if (index + 1) % updateEvery == 0 || index == n - 1 {
            try send(data: [], index: index, fabric: fabric)
          }
        }
      }
    case .both:
      for index in 0..<n {
        try send(data: payload(index), index: index, fabric: fabric)
        try receive(fabric)
      }
    case .decline:
      break
    }
    // Close: each side announces done-writing and close; the client goes first.
    if isClient {
      try send(data: [], index: n, fabric: fabric, state: [.peerDoneWriting, .peerClosed])
      while try receive(fabric).connectionState.isEmpty {}
    } else {
      while try receive(fabric).connectionState.isEmpty {}
      try send(data: [], index: n, fabric: fabric, state: [.peerDoneWriting, .peerClosed])
    }
  }

  /// Splits `count` bytes written at ring position `start` into records (ring end, max size).
  func recordSizes(count: Int, start: Int, ring: Int) -> [Int] {
    var sizes: [Int] = []
    var remaining = count
    var position = start % ring
    while remaining > 0 {
      let size = min(remaining, ring - position, options.maxRecord)
      sizes.append(size)
      remaining -= size
      position = (position + size) % ring
    }
    return sizes
  }

  static func advance(_ cursor: inout CDCCursor, by count: Int, ring: Int) {
    let total = Int(cursor.count) + count
    cursor.wrap &+= UInt16(truncatingIfNeeded: total / ring)
    cursor.count = UInt32(total % ring)
  }

  func cdcBody(_ message: CDCMessage) -> [UInt8] {
    if message.mode == .smcD { return message.encodeSMCD() }
    // 44-byte message + 4 bytes of buffer leftovers (the same on both hosts).
    var leftovers = [UInt8](repeating: 0, count: 4)
    let noise = random.next()
    for i in 0..<4 { leftovers[i] = UInt8(truncatingIfNeeded: noise >> (8 * UInt64(i))) }
    return message.encodeSMCR() + leftovers
  }

  /// "RDMA-writes" `data` into the peer's buffer and sends the CDC message, writing the
  /// sender's dump records first.
  func send(
    data: [UInt8], index: Int, fabric: PeerSocket, state: CDCConnectionState = []
  ) throws(LabError) {
    let ring = options.ringSize
    if options.scenario == .failover && index == options.messages / 2 && index > 0 && !data.isEmpty {
      // Link failover: the new link re-writes the last two messages, so the producer cursor
      // in this CDC is below the previous one while the seqno keeps rising.
      let back = min(options.size * 2, Int(producer.count))
      producer.count -= UInt32(back)
    }
    let start = Int(producer.count)
    PeerEmulator.advance(&producer, by: data.count, ring: ring)
    seqno &+= 1
    let message = CDCMessage(
      mode: options.mode,
      sequenceNumber: options.mode == .smcR ? (options.scenario == .rwwi ? 0 : seqno) : nil,
      token: options.mode == .smcR ? peerToken : nil, producer: producer, consumer: consumer,
      producerFlags: [], connectionState: state)
    let body = cdcBody(message)
    var offset = 0
    for size in recordSizes(count: data.count, start: start, ring: ring) {
      try dump?.write(
        source: local, destination: peer, mode: options.mode, smcVersion: options.clcVersion, isCDC: false,
        body: Array(data[offset..<(offset + size)]))
      report.dataRecords += 1
      offset += size
    }
    try dump?.write(
      source: local, destination: peer, mode: options.mode, smcVersion: options.clcVersion, isCDC: true,
      body: body)
    report.cdcRecords += 1
    if options.scenario == .dupSeqno && index % 4 == 1 {
      // The first post "failed": ANCK dumped before posting, so the retry shows the same seqno.
      try dump?.write(
        source: local, destination: peer, mode: options.mode, smcVersion: options.clcVersion, isCDC: true,
        body: body)
      report.cdcRecords += 1
    }
    // cdc-loss: roughly one message in eight never reaches the receiver's dump.
    let lost = options.scenario == .cdcLoss && random.next() % 8 == 0 && state.isEmpty
    var frame = [UInt8](repeating: 0, count: 9)
    frame[0] = lost ? 1 : 0
    put32(&frame, 1, UInt32(data.count))
    put32(&frame, 5, UInt32(start))
    try fabric.writeMessage(.write, frame + data + body)
    report.messagesSent += 1
  }

  /// Receives one fabric write: the receiver's dump records (data, then CDC), on arrival.
  @discardableResult
  func receive(_ fabric: PeerSocket) throws(LabError) -> CDCMessage {
    guard let message = try fabric.readMessage(), message.kind == .write, message.payload.count >= 9 else {
      throw LabError("the peer ended the emulated fabric connection unexpectedly")
    }
    let bytes = message.payload
    let lost = bytes[0] == 1
    let count = Int(get32(bytes, 1))
    let start = Int(get32(bytes, 5))
    let cdcLength = options.mode == .smcR ? CDCRecord.smcRPayload : CDCRecord.smcDPayload
    guard bytes.count == 9 + count + cdcLength else { throw LabError("malformed fabric write from the peer") }
    var body = Array(bytes[(9 + count)...])
    if !lost {
      var offset = 9
      for size in recordSizes(count: count, start: start, ring: options.ringSize) {
        try dump?.write(
          source: peer, destination: local, mode: options.mode, smcVersion: options.clcVersion, isCDC: false,
          body: Array(bytes[offset..<(offset + size)]))
        report.dataRecords += 1
        offset += size
      }
      if options.mode == .smcD {
        // In received SMC-D records only the two cursors are meaningful; the rest is whatever
        // the buffer held.
        for i in Array(0..<8) + Array(24..<32) { body[i] = UInt8(truncatingIfNeeded: random.next()) }
      }
      try dump?.write(
        source: peer, destination: local, mode: options.mode, smcVersion: options.clcVersion, isCDC: true,
        body: body)
      report.cdcRecords += 1
    }
    PeerEmulator.advance(&consumer, by: count, ring: options.ringSize)
    report.messagesReceived += 1
    let decoded = Array(bytes[(9 + count)...]).withUnsafeBytes { raw in
      options.mode == .smcR ? CDCMessage.decodeSMCR(raw) : CDCMessage.decodeSMCD(raw)
    }
    guard let decoded else { throw LabError("the peer sent a malformed CDC message") }
    return decoded
  }
}

/// Fabric framing: [kind u8][length u32][payload].
enum FabricKind: UInt8 {
  case hello = 1
  case helloAck = 2
  case write = 3
}

extension PeerSocket {
  func writeMessage(_ kind: FabricKind, _ payload: [UInt8]) throws(LabError) {
    var header = [UInt8](repeating: 0, count: 5)
    header[0] = kind.rawValue
    put32(&header, 1, UInt32(payload.count))
    try writeAll(header + payload)
  }

  func readMessage() throws(LabError) -> (kind: FabricKind, payload: [UInt8])? {
    guard let header = try readExact(5) else { return nil }
    guard let kind = FabricKind(rawValue: header[0]) else {
      throw LabError("unknown fabric message \(header[0])")
    }
    let length = Int(get32(header, 1))
    guard length <= 64 << 20 else { throw LabError("fabric message of \(length) bytes is too large") }
    let payload = length == 0 ? [] : (try readExact(length) ?? [])
    return (kind, payload)
  }

  /// True when a read would not block.
  func hasData() throws(LabError) -> Bool {
    var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&entry, 1, 0) > 0
  }
}

func put32(_ out: inout [UInt8], _ at: Int, _ v: UInt32) {
  for i in 0..<4 { out[at + i] = UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32(i))) }
}

func get32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
  (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(bytes[at + $1]) }
}
