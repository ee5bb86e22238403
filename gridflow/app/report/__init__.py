"""`gridflow report`'s outputs: the report of a period read from the archive (`source`), and rendered
as a terminal table (`as_text`), CSV (`as_csv`), JSON (`as_json`) or one self-contained HTML page with
charts (`as_html`, drawing with `charts`); `formats` writes the numbers the same way in each."""
