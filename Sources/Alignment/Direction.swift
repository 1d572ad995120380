import CaptureFiles
import SMCWire

/// A handshake fact about one address: a SYN without ACK, or a CLC Proposal, is sent by the
/// connection's client (`opened`); a SYN-ACK by its server.
public struct HandshakeRole: Sendable, Hashable {
  public var address: IPAddress
  public var opened: Bool

  public init(address: IPAddress, opened: Bool) {
    self.address = address
    self.opened = opened
  }
}

/// Packets from one address to another.
public struct AddressFlow: Sendable, Hashable {
  public var source: IPAddress
  public var destination: IPAddress

  public init(source: IPAddress, destination: IPAddress) {
    self.source = source
    self.destination = destination
  }
}

/// Which host sent a pair, by the directions both captures recorded (pcapng `epb_flags`, or
/// the packet type of Linux cooked captures): nil when neither recorded one or they disagree.
enum RecordedSender {
  case clientHost, serverHost

  init?(client: PacketDirection, server: PacketDirection) {
    let byClient = client == .outbound || server == .inbound
    let byServer = client == .inbound || server == .outbound
    switch (byClient, byServer) {
    case (true, false): self = .clientHost
    case (false, true): self = .serverHost
    default: return nil
    }
  }
}

/// What the pairs of one flow say about who sent them: their times both ways (hull vertices,
/// enough for a clock fit) and the directions the captures recorded.
struct FlowEvidence: Sendable {
  var hulls = DirectedHulls()
  var pairs = 0
  var recordedByClientHost = 0
  var recordedByServerHost = 0

  mutating func add(client: SidePacket, server: SidePacket) {
    pairs += 1
    hulls.add(
      PairedTimes(
        clientToServer: true, clientNanoseconds: client.timeNanoseconds,
        serverNanoseconds: server.timeNanoseconds))
    switch RecordedSender(client: client.recorded, server: server.recorded) {
    case .clientHost: recordedByClientHost += 1
    case .serverHost: recordedByServerHost += 1
    case nil: break
    }
  }

  /// The pair times as if `source` were on the client capture's host (`fromClient`) or not.
  func times(fromClient: Bool) -> [PairedTimes] {
    (fromClient ? hulls.asClient.vertices : hulls.asServer.vertices).map {
      var times = $0
      times.clientToServer = fromClient
      return times
    }
  }
}

/// How the host of a group of addresses was decided, strongest first.
public enum DirectionEvidence: String, Sendable, Codable {
  /// `--client-address`.
  case given
  /// Both captures recorded the packets' directions (pcapng flags, Linux cooked packet type).
  case recorded = "recorded direction"
  /// Only one way round admits a clock model (receives after sends in both directions).
  case timing
  /// SYN / CLC Proposal senders are the client's (assumes the files were given in order).
  case handshake
}

/// One group of addresses that talk to each other, placed on the two hosts (or not).
public struct DirectionDecision: Sendable {
  /// Addresses on the client capture's host and on the server capture's host.
  public var client: Set<IPAddress>
  public var server: Set<IPAddress>
  /// Nil when nothing decided: the pairs of these addresses have no direction.
  public var evidence: DirectionEvidence?
  public var pairs: Int
  /// What decided, or why nothing could, for people.
  public var explanation: String
}

/// Which traffic addresses belong to which capture's host, decided from the captures alone:
/// recorded directions, then timing, then the handshake. A login address is never evidence.
public struct HostAddresses: Sendable {
  public var client: Set<IPAddress> = []
  public var server: Set<IPAddress> = []
  public var decisions: [DirectionDecision] = []
  /// `--client-address` values never seen in a pair (not used).
  public var unusedGiven: [IPAddress] = []
  /// Set when the client capture's host accepted the connections: the files look swapped.
  public var swapped: String?
  /// Warnings about contradicting evidence.
  public var warnings: [String] = []

  public init(client: Set<IPAddress> = [], server: Set<IPAddress> = []) {
    self.client = client
    self.server = server
  }

  /// Whether `source` sent from the client capture's host: nil when undecided.
  public func fromClient(_ source: IPAddress) -> Bool? {
    if client.contains(source) { return true }
    if server.contains(source) { return false }
    return nil
  }

  /// Pairs whose direction could not be told.
  public var undecidedPairs: Int { decisions.filter { $0.evidence == nil }.reduce(0) { $0 + $1.pairs } }
  public var decidedPairs: Int { decisions.filter { $0.evidence != nil }.reduce(0) { $0 + $1.pairs } }
}

/// Decides which host sent each flow. Addresses linked by a flow are on different hosts, so
/// each connected group has two possible placements; evidence picks one or none:
/// 1. `given` client addresses (an override; contradictions are warned about),
/// 2. recorded directions, when every pair that has them agrees,
/// 3. timing, when exactly one placement admits a clock model,
/// 4. the handshake (SYN / Proposal senders on the client capture's host), when unanimous.
/// A group nothing decides stays undecided: its pairs are not used and have no direction.
enum DirectionResolver {
  static func resolve(
    flows: [AddressFlow: FlowEvidence], roles: Set<HandshakeRole>, given: Set<IPAddress>, reference: Int64
  ) -> HostAddresses {
    var hosts = HostAddresses()
    let groups = groups(of: Array(flows.keys))
    let seen = Set(flows.keys.flatMap { [$0.source, $0.destination] })
    hosts.unusedGiven = given.subtracting(seen).sorted { $0.description < $1.description }
    var decided: [(group: Group, colourOnClient: Int)] = []
    var pending: [Group] = []
    var handshakeContradicted = 0
    var handshakeAgreed = 0
    for group in groups {
      let handshake = group.vote(roles.map { ($0.address, $0.opened) })
      var choice: (Int, DirectionEvidence, String)?
      if group.conflict {
        pending.append(group)
        continue
      }
      let givenVote = group.vote(given.filter(seen.contains).map { ($0, true) })
      let recordedVote = group.recordedVote(flows)
      let timing = group.timingChoice(flows, others: [], reference: reference)
      if let colour = givenVote.unanimous {
        choice = (colour, .given, "given as the client's")
        for (name, other) in [("recorded directions", recordedVote.unanimous), ("timing", timing)]
        where other != nil && other != colour {
          hosts.warnings.append(
            "the given client address \(group.describe(colour)) contradicts the \(name) of the captures")
        }
      } else if let colour = recordedVote.unanimous {
        choice = (colour, .recorded, "\(recordedVote.count) pair(s) with recorded directions agree")
      } else if let colour = timing {
        choice = (colour, .timing, "only this way round are all receives after their sends")
      } else if let colour = handshake.unanimous {
        choice = (colour, .handshake, "SYN or CLC Proposal sent from here (files taken in the order given)")
      }
      if let (colour, evidence, why) = choice {
        if evidence != .handshake, let opener = handshake.unanimous {
          if opener == colour { handshakeAgreed += 1 } else { handshakeContradicted += 1 }
        }
        decided.append((group, colour))
        hosts.decisions.append(group.decision(colour, evidence: evidence, why: why, flows: flows))
      } else {
        pending.append(group)
      }
    }
    // A group that cannot decide alone may with the model the decided groups give.
    let decidedTimes = decided.flatMap { $0.group.times(colourOnClient: $0.colourOnClient, flows) }
    for group in pending {
      if !group.conflict, !decidedTimes.isEmpty,
        let colour = group.timingChoice(flows, others: decidedTimes, reference: reference)
      {
        hosts.decisions.append(
          group.decision(
            colour, evidence: .timing, why: "only this way round fits the clock model of the other addresses",
            flows: flows))
        continue
      }
      hosts.decisions.append(
        DirectionDecision(
          client: [], server: [], evidence: nil, pairs: group.pairs(flows),
          explanation: group.conflict
            ? "\(group.listed): the same address appears as both hosts' — cannot tell the direction"
            : "\(group.listed): no recorded direction, no handshake, and both ways round fit the times — cannot tell the direction"
        ))
    }
    for decision in hosts.decisions where decision.evidence != nil {
      hosts.client.formUnion(decision.client)
      hosts.server.formUnion(decision.server)
    }
    if handshakeContradicted > 0 && handshakeAgreed == 0 {
      hosts.swapped =
        "the client capture's host accepted the connections (the SYN / CLC Proposal came from the server capture's host)"
    }
    return hosts
  }

  /// Addresses joined by flows, each with a colour: flows join different colours.
  struct Group {
    var colour: [IPAddress: Int] = [:]
    var flows: [AddressFlow] = []
    var conflict = false

    var listed: String { colour.keys.map(\.description).sorted().joined(separator: ", ") }

    func describe(_ colourOnClient: Int) -> String {
      colour.filter { $0.value == colourOnClient }.keys.map(\.description).sorted().joined(separator: ", ")
    }

    /// Votes "this address is on the client host" (true) or on the server host (false),
    /// turned into votes for the colour on the client host.
    func vote(_ facts: [(IPAddress, Bool)]) -> Vote {
      var vote = Vote()
      for (address, onClient) in facts {
        guard let c = colour[address] else { continue }
        vote.add(onClient ? c : 1 - c)
      }
      return vote
    }

    func recordedVote(_ evidence: [AddressFlow: FlowEvidence]) -> Vote {
      var vote = Vote()
      for flow in flows {
        guard let e = evidence[flow], let c = colour[flow.source] else { continue }
        vote.add(c, times: e.recordedByClientHost)
        vote.add(1 - c, times: e.recordedByServerHost)
      }
      return vote
    }

    func times(colourOnClient: Int, _ evidence: [AddressFlow: FlowEvidence]) -> [PairedTimes] {
      flows.flatMap { flow in
        evidence[flow]?.times(fromClient: colour[flow.source] == colourOnClient) ?? []
      }
    }

    /// The colour on the client host when exactly one choice admits a clock model.
    func timingChoice(_ evidence: [AddressFlow: FlowEvidence], others: [PairedTimes], reference: Int64)
      -> Int?
    {
      let feasible = [0, 1].map { c in
        ClockFitter.fit(others + times(colourOnClient: c, evidence), reference: reference).feasible
      }
      switch (feasible[0], feasible[1]) {
      case (true, false): return 0
      case (false, true): return 1
      default: return nil
      }
    }

    func pairs(_ evidence: [AddressFlow: FlowEvidence]) -> Int {
      flows.reduce(0) { $0 + (evidence[$1]?.pairs ?? 0) }
    }

    func decision(
      _ colourOnClient: Int, evidence: DirectionEvidence, why: String, flows all: [AddressFlow: FlowEvidence]
    ) -> DirectionDecision {
      let client = Set(colour.filter { $0.value == colourOnClient }.keys)
      let server = Set(colour.keys).subtracting(client)
      let names = { (s: Set<IPAddress>) in s.map(\.description).sorted().joined(separator: ", ") }
      return DirectionDecision(
        client: client, server: server, evidence: evidence, pairs: pairs(all),
        explanation:
          "\(names(client)) on the client capture's host, \(names(server)) on the server's: \(evidence.rawValue) (\(why))"
      )
    }
  }

  struct Vote {
    var forColour = [0, 0]
    var count: Int { forColour[0] + forColour[1] }
    mutating func add(_ colour: Int, times: Int = 1) { forColour[colour] += times }
    /// The colour every vote names, if there are votes.
    var unanimous: Int? {
      if forColour[0] > 0 && forColour[1] == 0 { return 0 }
      if forColour[1] > 0 && forColour[0] == 0 { return 1 }
      return nil
    }
  }

  /// Connected groups of addresses, two-coloured along flows (a flow whose two ends would
  /// need the same colour marks its group as a conflict).
  static func groups(of flows: [AddressFlow]) -> [Group] {
    var neighbours: [IPAddress: [IPAddress]] = [:]
    for flow in flows {
      neighbours[flow.source, default: []].append(flow.destination)
      neighbours[flow.destination, default: []].append(flow.source)
    }
    var colour: [IPAddress: Int] = [:]
    var groupOf: [IPAddress: Int] = [:]
    var groups: [Group] = []
    for start in neighbours.keys.sorted(by: { $0.description < $1.description }) where colour[start] == nil {
      var group = Group()
      colour[start] = 0
      var queue = [start]
      while let address = queue.popLast() {
        group.colour[address] = colour[address]
        groupOf[address] = groups.count
        for next in neighbours[address] ?? [] {
          if let c = colour[next] {
            if c == colour[address] { group.conflict = true }
          } else {
            colour[next] = 1 - (colour[address] ?? 0)
            queue.append(next)
          }
        }
      }
      groups.append(group)
    }
    for flow in flows {
      if let index = groupOf[flow.source] { groups[index].flows.append(flow) }
    }
    return groups
  }
}
