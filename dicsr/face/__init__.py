"""Face geometry: detection (``detect``), crops per model convention (``crop``) and paste-back (``paste``).

Submodules are imported explicitly (``from dicsr.face.detect import FaceDetector``) so that
``import dicsr.face`` does not pull in facexlib.
"""
