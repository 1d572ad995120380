import Orchestration
import Testing

/// Drives a machine through `events`, expecting each action in turn; returns it.
func drive(
  _ events: [(PairEvent, PairAction)], from state: PairState = .preflight,
  sourceLocation: SourceLocation = #_sourceLocation
) throws -> PairStateMachine {
  var machine = PairStateMachine(pair: "pair1", state: state)
  for (event, expected) in events {
    let action = try machine.handle(event)
    #expect(action == expected, "\(event)", sourceLocation: sourceLocation)
  }
  return machine
}

/// Every event, with sample reasons.
let allEvents: [PairEvent] = [
  .preflightPassed, .abandoned(why: "preflight failed"), .armed,
  .sideStopped(reason: "server stopped: packets"),
  .stopRequested(reason: "stopped by Ctrl-C"), .abortRequested, .resumed, .finalized, .pulled,
  .pullFailed(anything: true), .pullFailed(anything: false), .merged(complete: true),
  .merged(complete: false),
  .mergeFailed(error: "not a capture"),
]

@Suite struct PairStateMachinePaths {
  let capturing: [(PairEvent, PairAction)] = [
    (.preflightPassed, .startSides), (.armed, .watch),
  ]

  @Test func aCompleteCapture() throws {
    var machine = PairStateMachine(pair: "pair1")
    #expect(machine.state == .preflight)
    #expect(try machine.handle(.preflightPassed) == .startSides && machine.state == .arming)
    #expect(try machine.handle(.armed) == .watch && machine.state == .capturing)
    #expect(
      try machine.handle(.stopRequested(reason: "workload ended (exit status 0)"))
        == .stopSides(reason: "workload ended (exit status 0)"))
    #expect(machine.state == .stopping)
    #expect(try machine.handle(.finalized) == .pull && machine.state == .pulling && !machine.merging)
    // Pulled: still `pulling` in session.json while the merge runs.
    #expect(try machine.handle(.pulled) == .merge && machine.state == .pulling && machine.merging)
    #expect(try machine.handle(.merged(complete: true)) == .done && machine.state == .complete)
    #expect(machine.state.isFinal)
  }

  @Test func aSideStoppingOnItsOwnStopsThePair() throws {
    let machine = try drive(
      capturing + [
        (.sideStopped(reason: "client stopped: duration"), .stopSides(reason: "client stopped: duration"))
      ])
    #expect(machine.state == .stopping)
  }

  @Test func partialResults() throws {
    let stopped =
      capturing + [
        (.sideStopped(reason: "client c1 was lost"), .stopSides(reason: "client c1 was lost")),
        (.finalized, .pull),
      ]
    // Both pulled, one capture ended early: merged, partial.
    #expect(try drive(stopped + [(.pulled, .merge), (.merged(complete: false), .done)]).state == .partial)
    // One side pulled: nothing to merge.
    let one = try drive(
      stopped + [
        (
          .pullFailed(anything: true),
          .recordNoMerge(reason: "only one side's capture was pulled; nothing to merge")
        )
      ])
    #expect(one.state == .partial)
    // The merge failed: what was pulled stays.
    let failedMerge = try drive(
      stopped + [(.pulled, .merge), (.mergeFailed(error: "bad file"), .recordMergeError("bad file"))])
    #expect(failedMerge.state == .partial)
  }

  @Test func failures() throws {
    #expect(
      try drive([(.abandoned(why: "preflight failed"), .closeAgents(why: "preflight failed"))]).state
        == .failed)
    #expect(
      try drive([
        (.preflightPassed, .startSides),
        (
          .abandoned(why: "a host could not start capturing"),
          .closeAgents(why: "a host could not start capturing")
        ),
      ]).state == .failed)
    // Nothing pulled at all.
    let nothing = try drive(
      capturing + [
        (.stopRequested(reason: "stopped by Ctrl-C"), .stopSides(reason: "stopped by Ctrl-C")),
        (.finalized, .pull),
        (
          .pullFailed(anything: false),
          .recordNoMerge(reason: "only one side's capture was pulled; nothing to merge")
        ),
      ])
    #expect(nothing.state == .failed)
  }

  @Test func ctrlCStopsThenASecondAbortsWhereverThePairIs() throws {
    var machine = try drive(
      capturing + [(.stopRequested(reason: "stopped by Ctrl-C"), .stopSides(reason: "stopped by Ctrl-C"))])
    #expect(machine.state == .stopping)
    // The second Ctrl-C: the state stays (session.json keeps it for resume).
    #expect(try machine.handle(.abortRequested) == .leaveAgentsToTheirLimits && machine.state == .stopping)
    for state in PairState.allCases where !state.isFinal {
      var other = PairStateMachine(pair: "p", state: state)
      #expect(try other.handle(.abortRequested) == .leaveAgentsToTheirLimits && other.state == state)
    }
  }

  @Test func aResumeStopsPullsAndMerges() throws {
    let machine = try drive([
      (.resumed, .reattach), (.finalized, .pull), (.pulled, .merge), (.merged(complete: true), .done),
    ])
    #expect(machine.state == .complete)
    #expect(
      try drive([
        (.resumed, .reattach), (.finalized, .pull),
        (
          .pullFailed(anything: false),
          .recordNoMerge(reason: "only one side's capture was pulled; nothing to merge")
        ),
      ]).state == .failed)
  }
}

@Suite struct PairStateMachineIllegalEvents {
  @Test func illegalEventsAreErrorsNamingThePairAndLeaveTheState() throws {
    var machine = try drive([(.preflightPassed, .startSides), (.armed, .watch)])
    #expect(throws: PairStateError(pair: "pair1", state: .capturing, event: .merged(complete: true))) {
      try machine.handle(.merged(complete: true))
    }
    #expect(machine.state == .capturing)
    do {
      _ = try machine.handle(.resumed)
      Issue.record("resumed while capturing")
    } catch {
      #expect(error.description.hasPrefix("pair pair1: resumed is not allowed while capturing"))
    }
  }

  @Test func noStepIsSkipped() {
    let cases: [(PairState, PairEvent)] = [
      (.preflight, .armed), (.preflight, .finalized), (.arming, .stopRequested(reason: "x")),
      (.arming, .resumed), (.capturing, .finalized), (.capturing, .abandoned(why: "late")),
      (.stopping, .pulled),
      (.stopping, .sideStopped(reason: "again")), (.pulling, .merged(complete: true)),
      (.pulling, .mergeFailed(error: "x")), (.complete, .abortRequested), (.failed, .resumed),
    ]
    for (state, event) in cases {
      var machine = PairStateMachine(pair: "p", state: state)
      #expect(throws: PairStateError.self, "\(state) + \(event)") { try machine.handle(event) }
      #expect(machine.state == state)
    }
  }

  @Test func aPairIsPulledAndMergedOnce() throws {
    var machine = try drive([(.resumed, .reattach), (.finalized, .pull), (.pulled, .merge)])
    #expect(throws: PairStateError.self) { try machine.handle(.pulled) }
    #expect(throws: PairStateError.self) { try machine.handle(.pullFailed(anything: true)) }
    #expect(try machine.handle(.mergeFailed(error: "x")) == .recordMergeError("x"))
    #expect(throws: PairStateError.self) { try machine.handle(.merged(complete: true)) }
  }

  @Test func finalStatesTakeNoEvent() {
    for state in PairState.allCases where state.isFinal {
      for event in allEvents {
        var machine = PairStateMachine(pair: "p", state: state)
        #expect(throws: PairStateError.self, "\(state) + \(event)") { try machine.handle(event) }
      }
    }
  }

  /// Whatever the event, the machine only takes the steps session.json's states allow.
  @Test func everyStepTakenIsAnAllowedOne() {
    for state in PairState.allCases {
      for event in allEvents {
        var machine = PairStateMachine(pair: "p", state: state)
        guard (try? machine.handle(event)) != nil else {
          #expect(machine.state == state)
          continue
        }
        let stayed = machine.state == state && (event == .abortRequested || event == .pulled)
        #expect(stayed || state.canMove(to: machine.state), "\(state) + \(event) -> \(machine.state)")
      }
    }
  }
}
