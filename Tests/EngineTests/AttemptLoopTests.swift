import Testing
@testable import Engine

/// The request lifecycle every lane drives, with instants and no sockets.
struct AttemptLoopTests {
    let start = ContinuousClock.now
    let timeouts = UpstreamTimeouts(connect: .seconds(1), firstByte: .seconds(30), idle: .seconds(5), total: .seconds(60))

    func target(_ provider: String, route: String = "r") -> PlannedTarget {
        PlannedTarget(route: route, target: RouteTarget(provider: provider, model: "m"))
    }

    func loop(_ providers: [String], retry: RetryPolicy = RetryPolicy(), hedge: HedgePolicy? = nil) -> AttemptLoop {
        var route = RouteSettings(alias: "r", targets: providers.map { RouteTarget(provider: $0, model: "m") })
        route.retry = retry
        route.hedge = hedge
        let plan = FailoverPlan(route: route, candidates: providers.map { self.target($0) }, contextCandidates: [], startedAt: self.start)
        return AttemptLoop(plan: plan, hedgeDelay: hedge?.initialDelay)
    }

    func sentTarget(_ action: AttemptLoop.Action) -> String? {
        if case .send(let target) = action { return target.provider }
        return nil
    }

    @Test func aFailedTargetFailsOverAtOnceAndTheWinnerIsDelivered() {
        var loop = self.loop(["a", "b"])
        #expect(self.sentTarget(loop.start()) == "a")
        let first = loop.sent(self.target("a"), timeouts: self.timeouts, streaming: false, at: self.start)
        #expect(self.sentTarget(loop.failed(first, .connect, at: self.start, random: 0.5)) == "b")
        let second = loop.sent(self.target("b"), timeouts: self.timeouts, streaming: false, at: self.start + .milliseconds(5))
        guard case .deliver(let winner, let cancelled) = loop.succeeded(second) else { Issue.record("no delivery"); return }
        #expect(winner == second && cancelled.isEmpty)
        #expect(loop.attemptsStarted == 2 && loop.firstSent == self.start && loop.isOver)
        #expect(loop.nextDeadline == nil)
    }

    @Test func theSameTargetIsRetriedOnlyAfterItsBackoff() {
        var loop = self.loop(["a"], retry: RetryPolicy(attempts: 3, backoff: .milliseconds(100)))
        let first = loop.sent(self.target("a"), timeouts: self.timeouts, streaming: false, at: self.start)
        let now = self.start + .milliseconds(10)
        guard case .wait = loop.failed(first, .serverError, at: now, random: 0.5) else { Issue.record("retried at once"); return }
        #expect(loop.nextDeadline == now + .milliseconds(50))
        guard case .wait = loop.tick(at: now + .milliseconds(49)) else { Issue.record("backoff cut short"); return }
        #expect(self.sentTarget(loop.tick(at: now + .milliseconds(50))) == "a")
    }

    @Test func aRefusedTicketSkipsToTheNextAndNothingLeftGivesUpWithoutAFailure() {
        var loop = self.loop(["a", "b"])
        #expect(self.sentTarget(loop.ticketRefused(self.target("a"))) == "b")
        guard case .giveUp = loop.ticketRefused(self.target("b")) else { Issue.record("did not give up"); return }
        #expect(loop.attemptsStarted == 0)
    }

    @Test func theAttemptBudgetEndsTheTrying() {
        var loop = self.loop(["a", "b"], retry: RetryPolicy(attempts: 2))
        let first = loop.sent(self.target("a"), timeouts: self.timeouts, streaming: false, at: self.start)
        _ = loop.failed(first, .timeout, at: self.start, random: 0)
        let second = loop.sent(self.target("b"), timeouts: self.timeouts, streaming: false, at: self.start)
        guard case .giveUp = loop.failed(second, .rateLimited(retryAfter: .seconds(30)), at: self.start, random: 0) else {
            Issue.record("did not give up")
            return
        }
        #expect(loop.isOver && loop.nextDeadline == nil)
    }

    @Test func aCallerErrorIsNeverRetried() {
        var loop = self.loop(["a", "b"])
        let first = loop.sent(self.target("a"), timeouts: self.timeouts, streaming: false, at: self.start)
        guard case .giveUp = loop.failed(first, .caller, at: self.start, random: 0) else { Issue.record("retried a 400"); return }
    }

    @Test func theHeadIsAwaitedForTheShorterOfFirstByteAndTotalOrIdleForAStream() {
        var whole = self.loop(["a"])
        let id = whole.sent(self.target("a"), timeouts: self.timeouts, streaming: false, at: self.start)
        #expect(whole.nextDeadline == self.start + .seconds(30))
        guard case .wait = whole.tick(at: self.start + .seconds(29)) else { Issue.record("early timeout"); return }
        guard case .timedOut(id, .firstByte) = whole.tick(at: self.start + .seconds(30)) else { Issue.record("no first_byte timeout"); return }

        var stream = self.loop(["a"])
        _ = stream.sent(self.target("a"), timeouts: self.timeouts, streaming: true, at: self.start)
        #expect(stream.nextDeadline == self.start + .seconds(5))

        let short = UpstreamTimeouts(connect: .seconds(1), firstByte: .seconds(30), idle: .seconds(5), total: .seconds(2))
        var capped = self.loop(["a"])
        let cappedID = capped.sent(self.target("a"), timeouts: short, streaming: false, at: self.start)
        guard case .timedOut(cappedID, .total) = capped.tick(at: self.start + .seconds(2)) else { Issue.record("no total timeout"); return }
    }

    @Test func theRequestsDeadlineBoundsEveryAttempt() {
        var loop = self.loop(["a"], retry: RetryPolicy(deadline: .seconds(3)))
        _ = loop.sent(self.target("a"), timeouts: self.timeouts, streaming: false, at: self.start + .seconds(1))
        #expect(loop.nextDeadline == self.start + .seconds(3))
    }

    @Test func aWholeAnswerMayNotFallSilentAndAStreamsFirstChunkIsAwaitedForIdle() {
        var whole = self.loop(["a"])
        let id = whole.sent(self.target("a"), timeouts: self.timeouts, streaming: false, at: self.start)
        whole.answered(id, status: 200, at: self.start + .seconds(10))
        #expect(whole.nextDeadline == self.start + .seconds(40))
        whole.read(id, at: self.start + .seconds(35))
        // Reading pushes the silence back, up to the total.
        #expect(whole.nextDeadline == self.start + .seconds(60))

        var stream = self.loop(["a"])
        let streamID = stream.sent(self.target("a"), timeouts: self.timeouts, streaming: true, at: self.start)
        stream.answered(streamID, status: 200, at: self.start + .seconds(1))
        #expect(stream.nextDeadline == self.start + .seconds(6))
        // An error answer to a stream request is read whole.
        var refused = self.loop(["a"])
        let refusedID = refused.sent(self.target("a"), timeouts: self.timeouts, streaming: true, at: self.start)
        refused.answered(refusedID, status: 500, at: self.start + .seconds(1))
        #expect(refused.nextDeadline == self.start + .seconds(31))
    }

    @Test func aSlowFirstAttemptIsHedgedAndTheLoserCancelled() {
        var loop = self.loop(["a", "b"], hedge: HedgePolicy(initialDelay: .milliseconds(200)))
        let first = loop.sent(self.target("a"), timeouts: self.timeouts, streaming: false, at: self.start)
        #expect(loop.nextDeadline == self.start + .milliseconds(200))
        #expect(self.sentTarget(loop.tick(at: self.start + .milliseconds(200))) == "b")
        let hedge = loop.sent(self.target("b"), timeouts: self.timeouts, streaming: false, at: self.start + .milliseconds(200))
        #expect(loop.hedged)
        // The hedge failing leaves the first racing; the first winning cancels nothing more.
        guard case .wait = loop.failed(hedge, .serverError, at: self.start + .milliseconds(300), random: 0) else {
            Issue.record("gave up with an attempt still racing")
            return
        }
        guard case .deliver(first, let cancelled) = loop.succeeded(first) else { Issue.record("no delivery"); return }
        #expect(cancelled.isEmpty)

        var race = self.loop(["a", "b"], hedge: HedgePolicy(initialDelay: .milliseconds(200)))
        let slow = race.sent(self.target("a"), timeouts: self.timeouts, streaming: false, at: self.start)
        _ = race.tick(at: self.start + .milliseconds(200))
        let fast = race.sent(self.target("b"), timeouts: self.timeouts, streaming: false, at: self.start + .milliseconds(200))
        guard case .deliver(fast, let losers) = race.succeeded(fast) else { Issue.record("no delivery"); return }
        #expect(losers == [slow] && race.attemptsStarted == 2)
    }

    @Test func aClientThatLeavesEndsEverything() {
        var loop = self.loop(["a", "b"])
        let first = loop.sent(self.target("a"), timeouts: self.timeouts, streaming: false, at: self.start)
        #expect(loop.clientLeft() == [first])
        #expect(loop.nextDeadline == nil)
        guard case .wait = loop.failed(first, .connect, at: self.start, random: 0) else { Issue.record("acted after the client left"); return }
    }

    @Test func aRelayedStreamTimesOutOnSilenceButNotWhileTheClientHoldsIt() {
        var timer = RelayTimer(idle: .seconds(5), deadline: self.start + .seconds(60), at: self.start)
        #expect(timer.expired(at: self.start + .seconds(4)) == nil)
        #expect(timer.expired(at: self.start + .seconds(5)) == .idle)
        timer.clientReading(false, at: self.start + .seconds(1))
        #expect(timer.expired(at: self.start + .seconds(30)) == nil)
        #expect(timer.nextCheck(at: self.start + .seconds(30)) == self.start + .seconds(35))
        timer.clientReading(true, at: self.start + .seconds(30))
        #expect(timer.expired(at: self.start + .seconds(34)) == nil)
        #expect(timer.expired(at: self.start + .seconds(60)) == .total)
    }
}
