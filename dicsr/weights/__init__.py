"""Getting weights: the model zoo, the Hugging Face Hub, mirrors and official origins, the dicsr
cache of converted model folders, official-checkpoint reading and conversion, detector weights.
"""
