"""Datasets in and out of other tools' formats: SRNet-Datagen folders (import, export), Parquet, and
views for Hugging Face `datasets` and Ray Data."""
