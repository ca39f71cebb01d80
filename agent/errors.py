"""One small error hierarchy; every user-facing error is one line that says what to do."""


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(AgentError):
    """A configuration value is missing or wrong; the message names file, key and fix."""

    def __init__(self, path: str, key: str, problem: str, fix: str) -> None:
        self.path, self.key, self.problem, self.fix = path, key, problem, fix
        super().__init__(f"{path}: {key}: {problem}; fix: {fix}")


class ConfigProblems(ConfigError):
    """Every problem found in one configuration file (at least one); str() is one line per problem."""

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.path, first.key, first.problem, first.fix)
        self.errors = list(errors)
        self.args = ("\n".join(str(e) for e in self.errors),)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class DriverError(AgentError):
    """A driver cannot start or cannot talk to its device; the message names the driver or the device.

    Drivers raise it from their BackgroundDriver hooks (the base reports it and retries); the supervisor
    turns an exception out of a driver's start() into one, logs it and retries.
    """


class StoreError(AgentError):
    """The SQLite store is unusable (corrupt, unwritable)."""


class PrivacyError(AgentError):
    """A release would break a privacy promise (budget, randomness); nothing is released."""


class InternalThreadDied(AgentError):
    """An internal thread of the agent ended on an exception; the process exits non-zero to be restarted."""


class KernelWorkerError(AgentError):
    """The kernel worker process died, hung or failed a request; the release retries at the next tick."""
