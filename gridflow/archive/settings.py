"""What the archive and the archiver need to know: the database, and the archiver's consumer group.

Each setting is defined once, here; the application's settings (gridflow.app.settings) read them from
`GRIDFLOW_*` variables and flags.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ArchiveSettings(BaseModel):
    """The archive database and the archiver."""

    model_config = ConfigDict(frozen=True)

    archive_url: str = Field(
        "sqlite:///.gridflow/archive.db",
        description="the archive database (SQLAlchemy URL): postgresql+psycopg://USER@HOST/DB "
        "(TLS: ?sslmode=verify-full&sslrootcert=CA.pem) or sqlite:///FILE",
    )
    archive_password: SecretStr | None = Field(
        None, description="the archive database's password, kept out of the URL (never logged)"
    )
    archiver_group: str = Field("gridflow-archiver", description="the archiver's consumer group")
    archiver_batch: int = Field(500, description="most steps the archiver writes in one transaction")
