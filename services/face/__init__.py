"""Face pipeline algorithms: detect (FaceBoxes) -> refine + 5 landmarks (O-Net)
-> align (similarity to the ArcFace template) -> quality gate -> embed
(MobileFaceNet). Pure numpy/OpenCV on top of a pluggable ModelRunner."""
