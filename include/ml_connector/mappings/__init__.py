"""Mappings admins edit: JAGGAER vendors ↔ Exact suppliers (``vendors``), code maps (``codes``), and their CSV
import/export (``csvio``)."""
