import AgentProtocol
import CaptureFiles
import Support

#if canImport(Glibc)
  import Glibc
#endif

/// The capture thread's work for one session: reads every handle into the reorder window and
/// writes what it releases (rotating files), until the stop request, a limit or a failure;
/// then drains the kernel and the window and closes the file.
///
/// A class so that the window's write callback can update the counts while the window itself
/// is being changed (they are separate stored properties).
final class CaptureLoop {
  let session: CaptureSession
  let started: Int64
  /// The read end of the session's stop pipe: readable when `stop` asks the thread to end.
  let stopRequests: Int32
  /// Monotonic seconds at which the duration limit ends the capture, if it has one.
  let deadline: Double?
  let maxBytes: Int64
  var writer: PcapngWriter
  var fileIndex = 1
  var packets: Int64 = 0
  var bytes: Int64 = 0
  var perInterface: [UInt64]
  var bytesPerInterface: [UInt64]
  var outOfOrder: [UInt64]
  /// Packets written out of time order in the current file (reset at each rotation).
  var fileOutOfOrder: [UInt64]
  var window: ReorderWindow
  var local = LocalAddresses.current()
  /// The plan's choice of dump records (nil: every record whole).
  var selection: DumpRecordSelection?
  /// Monotonic seconds when the first dump record was seen while the selection was still
  /// learning the dump header: the window holds packets from then until the header is
  /// learned or `calibrationHold` has passed, so the first records are classified too.
  var learningSince: Double?
  /// How long the window holds packets back for the calibration at most.
  static let calibrationHold = 2.0
  /// The dump device's link type (Ethernet when it is not captured).
  let dumpLinkType: UInt32
  private(set) var failure: AgentProtocolError?
  private(set) var reason: StopReason?

  init(session: CaptureSession, writer: PcapngWriter, started: Int64, stopRequests: Int32) {
    self.session = session
    self.writer = writer
    self.started = started
    self.stopRequests = stopRequests
    let stop = session.plan.stop
    let maxDuration = stop.durationSeconds ?? (stop.packets == nil ? CapturePlan.defaultMaxDuration : nil)
    maxBytes = stop.bytes ?? CapturePlan.defaultMaxBytes
    deadline = maxDuration.map { SystemClock.monotonicSeconds() + $0 }
    perInterface = [UInt64](repeating: 0, count: session.interfaceNames.count)
    bytesPerInterface = perInterface
    outOfOrder = perInterface
    fileOutOfOrder = perInterface
    window = ReorderWindow(sources: session.sources.count)
    dumpLinkType = session.sources.first { $0.interface == session.dumpInterface }?.handle.linkType ?? 1
    selection = session.dumpInterface == nil ? nil : DumpRecordSelection(session.plan)
  }

  /// The window holds its packets while the selection learns the dump header (bounded by
  /// `calibrationHold` and the window's memory budget, which still releases the oldest).
  private func holdingForCalibration(now: Double) -> Bool {
    guard let selection, !selection.learner.finished, let since = learningSince else { return false }
    return now - since < Self.calibrationHold
  }

  /// Captures until something ends it, then completes the file; the failure (if any) and the
  /// reason the capture ended for its own part (nil when `stop` asked).
  func run() -> (failure: AgentProtocolError?, reason: StopReason?) {
    captureUntilStop()
    drainAndClose()
    return (failure, reason)
  }

  private func captureUntilStop() {
    var fds = session.sources.map { pollfd(fd: $0.handle.selectableFD, events: Int16(POLLIN), revents: 0) }
    fds.append(pollfd(fd: stopRequests, events: Int16(POLLIN), revents: 0))
    var lastFlush = SystemClock.monotonicSeconds()
    var lastAddresses = lastFlush
    while failure == nil {
      guard readReady(&fds) else { return }
      let now = SystemClock.monotonicSeconds()
      if !holdingForCalibration(now: now) {
        window.release(now: SystemClock.realtimeNanoseconds(), write: write)
      }
      if let reached = limitReached(now: now) {
        reason = reached
        return
      }
      if now - lastFlush >= 0.1 {
        flushAndPublish()
        lastFlush = now
      }
      if now - lastAddresses >= 1 {
        // Addresses can change during a capture; dump record directions follow them.
        local = LocalAddresses.current()
        lastAddresses = now
      }
    }
  }

  /// Waits up to 50 ms and reads every handle that is ready; false when the capture ends
  /// here (stop requested, or poll or a handle failed).
  private func readReady(_ fds: inout [pollfd]) -> Bool {
    let ready = poll(&fds, nfds_t(fds.count), 50)
    if ready < 0 && errno != EINTR {
      failure = AgentProtocolError(.capture, "poll: \(Errno.current)")
      return false
    }
    if fds[session.sources.count].revents != 0 { return false }
    for index in session.sources.indices where fds[index].revents != 0 {
      if take(index) < 0 {
        let handle = session.sources[index].handle
        failure = AgentProtocolError(.capture, "\(handle.interface): \(handle.lastError)")
        return false
      }
    }
    return true
  }

  /// The plan's limit the capture has reached, if any.
  private func limitReached(now: Double) -> StopReason? {
    let stop = session.plan.stop
    if let deadline, now >= deadline { return .durationReached }
    if let limit = stop.packets, packets >= limit { return .packetCountReached }
    if bytes >= maxBytes { return .byteLimitReached }
    let fileSize = Int64(writer.bytesWritten + writer.bufferedBytes)
    if let limit = stop.maxFileBytes, fileSize >= limit { return .fileSizeLimitReached }
    return nil
  }

  private func flushAndPublish() {
    do {
      try writer.flush()
    } catch {
      failure = AgentProtocolError(writing: error)
    }
    publish()
  }

  /// Drains what the kernel already holds (after one block-retire period, so a partly filled
  /// block is handed over too), then everything the window holds, statistics and the end of
  /// the file. Every stop path comes through here; after a write failure nothing more can be
  /// written, but the window is still emptied.
  private func drainAndClose() {
    if failure == nil {
      usleep(useconds_t(PcapHandle.retireMilliseconds * 2_500))
      for index in session.sources.indices {
        var rounds = 0
        while take(index) > 0 && rounds < 64 { rounds += 1 }
      }
    }
    window.release(now: SystemClock.realtimeNanoseconds(), all: true, write: write)
    publish()
    do {
      try session.finish(writer, started: started, written: perInterface, outOfOrder: fileOutOfOrder)
    } catch {
      if failure == nil { failure = AgentProtocolError(writing: error) }
    }
  }

  private func publish() {
    session.publish(
      packets: packets, bytes: bytes, perInterface: perInterface, bytesPerInterface: bytesPerInterface,
      outOfOrder: outOfOrder, dumpRecords: selection?.report)
  }

  /// Copies what source `sourceIndex` has ready into the window; the number read, or -1 on error.
  private func take(_ sourceIndex: Int) -> Int32 {
    let source = session.sources[sourceIndex]
    let linkType = source.handle.linkType
    let isDump = source.interface == session.dumpInterface
    return source.handle.dispatch(limit: 4096) { ns, length, data in
      if isDump, selection != nil {
        if learningSince == nil, selection?.learner.finished == false {
          learningSince = SystemClock.monotonicSeconds()
        }
        selection?.observe(data, linkType: linkType)
      }
      let direction =
        if case .byRecordAddresses = source.direction {
          local.directionOfDumpRecord(data, linkType: linkType)
        } else {
          source.direction.of(data, linkType: linkType)
        }
      window.add(
        source: sourceIndex, interface: source.interface, timestamp: ns, originalLength: length, data: data,
        direction: direction, write: write)
    }
  }

  /// Writes one packet the window released (`late`: out of time order) and rotates the file
  /// when it is full; after a failure nothing more is written.
  private func write(
    _ index: Int, _ ns: Int64, _ length: Int, _ data: UnsafeRawBufferPointer, _ direction: PacketDirection,
    _ late: Bool
  ) {
    guard failure == nil else { return }
    var data = data
    if index == session.dumpInterface, selection != nil {
      // Left out by the plan's smc_type/smc_mode (counted by the selection), or cut.
      guard let keep = selection?.decide(data, linkType: dumpLinkType) else { return }
      data = UnsafeRawBufferPointer(rebasing: data[0..<keep])
    }
    if late {
      outOfOrder[index] += 1
      fileOutOfOrder[index] += 1
    }
    do {
      try writer.writePacket(
        interface: index, timestampNanoseconds: ns, data: data, originalLength: length, direction: direction)
      packets += 1
      bytes += Int64(data.count)
      perInterface[index] += 1
      bytesPerInterface[index] += UInt64(data.count)
      // Rotation is checked per packet: one release can write thousands.
      if let rotate = session.plan.rotateBytes, Int64(writer.bytesWritten + writer.bufferedBytes) >= rotate {
        try rotateFile()
      }
    } catch {
      failure = AgentProtocolError(writing: error)
    }
  }

  private func rotateFile() throws(CaptureFileError) {
    try session.finish(writer, started: started, written: perInterface, outOfOrder: fileOutOfOrder)
    fileOutOfOrder = fileOutOfOrder.map { _ in 0 }
    fileIndex += 1
    writer = try session.openFile(index: fileIndex)
    let path = writer.path
    session.counters.withLock { $0.files.append(path) }
  }
}

extension AgentProtocolError {
  /// A capture file that could not be written: disk full, or any other I/O failure.
  init(writing error: CaptureFileError) {
    self.init(error.code == .diskFull ? .diskFull : .io, error.description)
  }
}
