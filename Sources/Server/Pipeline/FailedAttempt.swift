import Engine
import Logging

/// A failed attempt as the client may get it: the error, and the upstream's reply when it answered.
struct FailedAttempt: Sendable {
    let error: GatewayError
    let outcome: AttemptOutcome?
}

extension AttemptLoop {
    /// Reports a failed attempt at this instant, logged with the failure and what follows.
    mutating func failed(_ id: AttemptID, _ failure: AttemptFailure, on target: PlannedTarget, requestID: String, logger: Logger) -> Action {
        let action = self.failed(id, failure, at: .now, random: Double.random(in: 0..<1))
        let next: String
        switch action {
        case .send(let target): next = "\(target.key) now"
        case .giveUp: next = "give up"
        default: next = self.nextDeadline.map { "wait \(($0 - .now).milliseconds) ms" } ?? "wait"
        }
        logger.log(
            level: failure == .caller ? .debug : .warning,
            "upstream attempt failed",
            metadata: [
                "gw.request_id": "\(requestID)", "gw.target": "\(target.key)", "gw.failure": "\(failure.label)",
                "gw.attempt": "\(self.attemptsStarted)", "gw.next": "\(next)",
            ]
        )
        return action
    }
}
