# Generates the base64 MAT files in ScipyMatFiles.cs (scipy 1.10.1, numpy 1.24, Debian 12 python3-scipy).
# Run: python3 make_scipy_mat_files.py; it writes bytes.txt (name, base64 per line), whose lines are the constants of ScipyMatFiles.cs.
import numpy as np, scipy.io as sio, base64, io
out = {}
def save(key, d, **kw):
    b = io.BytesIO(); sio.savemat(b, d, **kw); out[key] = b.getvalue()
# human_parts-like struct
def mk():
    dt_part = [('part_name','O'),('mask','O')]
    parts = np.zeros((1,2), dtype=dt_part)
    m1 = np.zeros((3,4), np.uint8); m1[0,1]=1
    m2 = np.zeros((3,4), np.uint8); m2[2,3]=1; m2[1,0]=1
    parts[0,0] = ('head', m1); parts[0,1] = ('llarm', m2)
    dt_obj = [('class','O'),('class_ind','O'),('mask','O'),('parts','O')]
    objs = np.zeros((1,2), dtype=dt_obj)
    objs[0,0] = ('person', np.array([[15.0]]), (m1|m2), parts)
    objs[0,1] = ('cat', np.array([[8.0]]), np.ones((3,4),np.uint8), np.zeros((0,0)))
    anno = np.zeros((1,1), dtype=[('imname','O'),('objects','O')])
    anno[0,0] = ('2008_000001', objs)
    return anno
save('parts_c', {'anno': mk()}, do_compression=True)
save('parts_u', {'anno': mk()}, do_compression=False)
lm = (np.arange(12, dtype=np.uint16).reshape(3,4) * 37 + 1)
save('labelmap_c', {'LabelMap': lm}, do_compression=True)
numerics = {
 'd': np.array([[1.5, -2.0, 3.25],[4.0, 5.0, 6.0]]),
 's': np.array([[1.5, 2.5]], dtype=np.float32),
 'i8': np.array([[-3, 4]], dtype=np.int8), 'u8': np.array([[200, 7, 9]], dtype=np.uint8),
 'i16': np.array([[-300],[400]], dtype=np.int16), 'u16': np.array([[60000, 1]], dtype=np.uint16),
 'i32': np.array([[-70000, 5]], dtype=np.int32), 'u32': np.array([[4000000000]], dtype=np.uint32),
 'i64': np.array([[-(2**40), 3]], dtype=np.int64), 'u64': np.array([[2**63 + 5]], dtype=np.uint64),
 'b': np.array([[True, False, True]]), 'e': np.zeros((0,0)), 'txt': 'hello', 'empty_txt': '',
 'cell': np.array([[np.array([[1.0]]), 'ab']], dtype=object),
 'nd': np.arange(24, dtype=np.float64).reshape(2,3,4),
}
save('numerics_u', numerics, do_compression=False)
save('numerics_c', numerics, do_compression=True)
with open('bytes.txt','w') as f:
    for k,v in out.items(): f.write(k + ' ' + base64.b64encode(v).decode() + '\n')
for k,v in out.items(): print(k, len(v))
r = sio.loadmat(io.BytesIO(out['parts_c']))
a = r['anno']
print(a[0][0][1][0][0][1], a[0][0][1][0][0][3][0][1][0][0], a[0][0][1][0][1][3].shape)
