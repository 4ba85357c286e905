dat_path = 'raw.dat'
n_channels_dat = 16
dtype = 'int16'
offset = 0
sample_rate = 30000.0
hp_filtered = False
