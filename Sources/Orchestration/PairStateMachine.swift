/// Where a pair is in its capture: session.json's `state`, `smcpair sessions list`.
public enum PairState: String, Sendable, Codable, CaseIterable {
  case preflight, arming, capturing, stopping, pulling, complete, partial, failed

  /// The states a pair may go to from this one. A resumed session starts again at
  /// `stopping` (from a fresh `preflight`): its agents are stopped, pulled and merged.
  /// `PairStateMachine` takes only these steps.
  public func canMove(to next: PairState) -> Bool {
    switch (self, next) {
    case (.preflight, .arming), (.preflight, .failed), (.preflight, .stopping): true
    case (.arming, .capturing), (.arming, .failed): true
    case (.capturing, .stopping): true
    case (.stopping, .pulling): true
    case (.pulling, .complete), (.pulling, .partial), (.pulling, .failed): true
    default: false
    }
  }

  /// Nothing more happens to the pair in this run.
  public var isFinal: Bool { self == .complete || self == .partial || self == .failed }
}

/// What happened to a pair, as `CaptureRun` tells its `PairStateMachine`.
public enum PairEvent: Sendable, Equatable, CustomStringConvertible {
  /// Both hosts passed the preflight and hold a prepared session.
  case preflightPassed
  /// Nothing captures: a host failed its preflight or could not start (`why` is recorded).
  case abandoned(why: String)
  /// Both sides are capturing.
  case armed
  /// A side stopped on its own (a limit, an error) or its host was lost.
  case sideStopped(reason: String)
  /// The coordinator stops the pair: Ctrl-C, or the workload ended.
  case stopRequested(reason: String)
  /// A second Ctrl-C: the coordinator goes at once and leaves the agents to their limits.
  case abortRequested
  /// A session left by an earlier coordinator is taken up again (`smcpair sessions resume`).
  case resumed
  /// Every side that could be was stopped and finalized; its files can be pulled.
  case finalized
  /// Both sides' captures are here and verified.
  case pulled
  /// At most one side's capture is here: nothing to merge. `anything` says whether one is.
  case pullFailed(anything: Bool)
  /// The merge wrote its outputs; `complete` says both captures were whole.
  case merged(complete: Bool)
  /// The merge refused or failed (`error` is recorded).
  case mergeFailed(error: String)

  public var description: String {
    switch self {
    case .preflightPassed: "preflight passed"
    case .abandoned(let why): "abandoned (\(why))"
    case .armed: "armed"
    case .sideStopped(let reason): "side stopped (\(reason))"
    case .stopRequested(let reason): "stop requested (\(reason))"
    case .abortRequested: "abort requested"
    case .resumed: "resumed"
    case .finalized: "finalized"
    case .pulled: "pulled"
    case .pullFailed(let anything): "pull failed (\(anything ? "one side pulled" : "nothing pulled"))"
    case .merged(let complete): "merged (\(complete ? "complete" : "partial"))"
    case .mergeFailed(let error): "merge failed (\(error))"
    }
  }
}

/// What `CaptureRun` must do for a pair after an event.
public enum PairAction: Sendable, Equatable {
  /// Start both sides' captures.
  case startSides
  /// Close the agents (nothing captures) and record `why` as the pair's stop reason.
  case closeAgents(why: String)
  /// Probe the clocks, start the workloads and watch the pair.
  case watch
  /// Record and tell `reason`; the pair's sides are stopped and finalized.
  case stopSides(reason: String)
  /// Stop and finalize the agents left by an earlier coordinator, then pull as usual.
  case reattach
  /// Pull the finalized captures.
  case pull
  /// Merge the two pulled captures.
  case merge
  /// Record why nothing was merged.
  case recordNoMerge(reason: String)
  /// Record the merge's error.
  case recordMergeError(String)
  /// Nothing more to do: the outputs are written.
  case done
  /// Exit now: the agents stop at their own limits; session.json keeps the last state for resume.
  case leaveAgentsToTheirLimits
}

/// An event the pair's state does not allow: a bug in the run's order, told with the pair's name.
public struct PairStateError: Error, Sendable, Equatable, CustomStringConvertible {
  public var pair: String
  public var state: PairState
  public var event: PairEvent

  public init(pair: String, state: PairState, event: PairEvent) {
    self.pair = pair
    self.state = state
    self.event = event
  }

  public var description: String {
    "pair \(pair): \(event) is not allowed while \(state.rawValue) (a bug in smcpair's capture order)"
  }
}

/// One pair's capture as a state machine: each event moves it along `PairState.canMove(to:)`
/// and returns the action the run must take; an event the state does not allow is an error
/// and leaves the state as it was.
public struct PairStateMachine: Sendable, Equatable {
  public let pair: String
  public private(set) var state: PairState
  /// Both captures were pulled and the merge is under way (still `pulling` in session.json).
  public private(set) var merging = false

  public init(pair: String, state: PairState = .preflight) {
    self.pair = pair
    self.state = state
  }

  /// Takes `event`: the new state is kept, the action returned.
  public mutating func handle(_ event: PairEvent) throws(PairStateError) -> PairAction {
    let (next, action) = try step(event)
    if state == .pulling && next == .pulling { merging = true }
    state = next
    return action
  }

  /// The state and action `event` leads to from here; nothing changes.
  func step(_ event: PairEvent) throws(PairStateError) -> (PairState, PairAction) {
    switch (state, event) {
    case (.preflight, .preflightPassed): return (.arming, .startSides)
    case (.preflight, .abandoned(let why)), (.arming, .abandoned(let why)):
      return (.failed, .closeAgents(why: why))
    case (.preflight, .resumed): return (.stopping, .reattach)
    case (.arming, .armed): return (.capturing, .watch)
    case (.capturing, .sideStopped(let reason)), (.capturing, .stopRequested(let reason)):
      return (.stopping, .stopSides(reason: reason))
    case (.stopping, .finalized): return (.pulling, .pull)
    case (.pulling, .pulled) where !merging: return (.pulling, .merge)
    case (.pulling, .pullFailed(let anything)) where !merging:
      return (
        anything ? .partial : .failed,
        .recordNoMerge(reason: "only one side's capture was pulled; nothing to merge")
      )
    case (.pulling, .merged(let complete)) where merging: return (complete ? .complete : .partial, .done)
    case (.pulling, .mergeFailed(let error)) where merging: return (.partial, .recordMergeError(error))
    case (let current, .abortRequested) where !current.isFinal: return (current, .leaveAgentsToTheirLimits)
    default: throw PairStateError(pair: pair, state: state, event: event)
    }
  }
}
