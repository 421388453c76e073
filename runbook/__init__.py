"""The spec's manual procedures as commands: snapshot, recover, audit."""
