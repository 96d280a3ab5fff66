"""The example portrait study: renditions, face crops, a simulated expert panel, PIQ23 I/O
and the demo pipeline that runs jodkit end to end."""
