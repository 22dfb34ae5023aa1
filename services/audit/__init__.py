"""The audit log's command line (`lfr audit verify|tail`); the writer is services.common.audit."""
